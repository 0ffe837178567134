"""Payments by status, reconciliation alarms and double payments as gauges, for Prometheus' alert rules."""

from datetime import date, timedelta

from disbursement.adapters.metrics import DOUBLE_PAYMENTS, PAYMENTS_BY_STATUS, RECONCILIATION_ALARMS
from disbursement.domain.payment import PaymentStatus
from disbursement.service_layer.unit_of_work import Units

RECONCILE_DAYS = 7
REFRESH_S = 15


async def refresh_payment_gauges(units: Units) -> bool:
    """Payments per status from the running counts (folded first), the tally of the last days by the
    reconciliation index, the doubly paid: one transaction (every REFRESH_S seconds, on the worker loop)."""
    async with units() as uow:
        await uow.payments.fold_counts()
        by_status = await uow.payments.count_by_status()
        days = await uow.payments.tally(since=date.today() - timedelta(days=RECONCILE_DAYS))
        doubles = await uow.payments.paid_twice()
    for status in PaymentStatus:
        PAYMENTS_BY_STATUS.labels(status.value).set(by_status.get(status.value, 0))
    RECONCILIATION_ALARMS.set(sum(1 for d in days if d.alarm))
    DOUBLE_PAYMENTS.set(doubles)
    return False
