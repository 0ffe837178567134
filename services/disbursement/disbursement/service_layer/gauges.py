"""Payments by status, reconciliation alarms and double payments as gauges, for Prometheus' alert rules."""

import asyncio
import logging
from datetime import date, timedelta

from sqlalchemy import func, select

from disbursement.adapters.metrics import DOUBLE_PAYMENTS, PAYMENTS_BY_STATUS, RECONCILIATION_ALARMS
from disbursement.adapters.tables import Payment, PaymentAttempt
from disbursement.domain.payment import PaymentStatus
from disbursement.service_layer.reconciliation import reconcile
from shared.service import Runtime

log = logging.getLogger(__name__)
RECONCILE_DAYS = 7
REFRESH_S = 15


async def publish_payment_gauges(runtime: Runtime, stopping: asyncio.Event) -> None:
    """Refresh the gauges every REFRESH_S seconds: grouped counts on indexed columns, one transaction."""
    while not stopping.is_set():
        try:
            async with runtime.db.transaction() as session:
                by_status = dict((await session.execute(
                    select(Payment.status, func.count()).group_by(Payment.status))).all())
                days = await reconcile(session, since=date.today() - timedelta(days=RECONCILE_DAYS))
                twice = select(PaymentAttempt.payment_id).where(
                    PaymentAttempt.status == PaymentStatus.SETTLED.value).group_by(
                    PaymentAttempt.payment_id).having(func.count() > 1).subquery()
                doubles = await session.scalar(select(func.count()).select_from(twice))
            for status in PaymentStatus:
                PAYMENTS_BY_STATUS.labels(status.value).set(by_status.get(status.value, 0))
            RECONCILIATION_ALARMS.set(sum(1 for d in days if d["alarm"]))
            DOUBLE_PAYMENTS.set(doubles or 0)
        except Exception:
            log.exception("payment gauges refresh failed")
        try:
            await asyncio.wait_for(stopping.wait(), timeout=REFRESH_S)
        except TimeoutError:
            pass
