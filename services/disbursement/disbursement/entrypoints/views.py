"""Reads: payments, a case's payment with its attempts, alarms, as the API shows them (no domain rule here
beyond the caller's area)."""

from typing import Any
from uuid import UUID

from sqlalchemy import select
from sqlmodel import col

from disbursement.adapters.tables import AlarmRow, AttemptRow, PaymentQueueRow, PaymentRow
from disbursement.domain.payment import PaymentStatus
from disbursement.service_layer.unit_of_work import DisbursementUnitOfWork
from shared.errors import NotFound
from shared.security.area import Area

QUEUED = frozenset({PaymentStatus.PENDING, PaymentStatus.SENDING})
"""The statuses `payment_queue` lists a payment in while it is in them (migration 0006)."""


def _payment_out(p: PaymentRow) -> dict[str, Any]:
    return {"payment_id": str(p.id), "case_id": str(p.case_id), "settlement_id": str(p.settlement_id),
            "person_ref": p.person_ref, "district_code": p.district_code, "amount": f"{p.amount:.2f}",
            "status": p.status, "attempt": p.attempt, "bank_reference": p.bank_reference,
            "failure_reason": p.failure_reason, "approved_on": p.approved_on.isoformat(),
            "updated_at": p.updated_at.isoformat()}


async def payments(uow: DisbursementUnitOfWork, *, status: PaymentStatus | None, district: str | None, limit: int,
                   offset: int) -> list[dict[str, Any]]:
    """Payments, newest first, by status and district. The pending and sending ones are picked in the queue that
    lists exactly them (`payment_queue`, by its status index): no index of `payment` names the status (ADR 0044),
    and the worker's few would otherwise be looked for in every payment (ADR 0054)."""
    query = select(PaymentRow)
    if status in QUEUED:
        query = query.where(col(PaymentRow.id).in_(select(col(PaymentQueueRow.payment_id)).where(
            col(PaymentQueueRow.status) == status.value)))
    if status:
        query = query.where(col(PaymentRow.status) == status.value)
    if district:
        query = query.where(col(PaymentRow.district_code) == district)
    rows = (await uow.session.execute(query.order_by(col(PaymentRow.updated_at).desc()).limit(limit).offset(offset)
                                      )).scalars()
    return [_payment_out(p) for p in rows]


async def payment_of_case(uow: DisbursementUnitOfWork, area: Area, case_id: UUID) -> dict[str, Any]:
    """The one payment of a case, with every attempt's key and outcome; outside the caller's area, none."""
    payment = (await uow.session.execute(select(PaymentRow).where(col(PaymentRow.case_id) == case_id))
               ).scalar_one_or_none()
    if payment is None or not area.contains(payment.district_code, None):
        raise NotFound("payment_not_found", "no payment for this case", field="case_id")
    attempts = (await uow.session.execute(select(AttemptRow).where(col(AttemptRow.payment_id) == payment.id)
                                          .order_by(col(AttemptRow.attempt)))).scalars()
    return {**_payment_out(payment), "attempts": [
        {"attempt": a.attempt, "idempotency_key": a.idempotency_key, "status": a.status, "reason": a.reason,
         "bank_reference": a.bank_reference} for a in attempts]}


async def alarms(uow: DisbursementUnitOfWork, *, district: str | None, limit: int, offset: int
                 ) -> list[dict[str, Any]]:
    """Alarms, newest first."""
    query = select(AlarmRow)
    if district:
        query = query.where(col(AlarmRow.district_code) == district)
    rows = (await uow.session.execute(query.order_by(col(AlarmRow.raised_at).desc()).limit(limit)
                                      .offset(offset))).scalars()
    return [{"alarm_id": str(a.id), "kind": a.kind, "idempotency_key": a.idempotency_key,
             "payment_id": str(a.payment_id) if a.payment_id else None,
             "case_id": str(a.case_id) if a.case_id else None, "district_code": a.district_code,
             "amount": f"{a.amount:.2f}" if a.amount is not None else None,
             "recovery_amount": f"{a.recovery_amount:.2f}" if a.recovery_amount is not None else None,
             "bank_reference": a.bank_reference, "detail": a.detail, "raised_at": a.raised_at.isoformat()}
            for a in rows]
