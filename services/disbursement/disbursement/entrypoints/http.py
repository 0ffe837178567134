"""Bank callbacks (a hint, confirmed by asking the bank), payments and the daily reconciliation."""

from datetime import date
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import case, func, select

from disbursement.adapters.bank import BankGateway
from disbursement.adapters.tables import Payment, PaymentAttempt
from disbursement.domain.payment import IN_FLIGHT, PaymentStatus
from disbursement.service_layer.payments import apply_bank_results
from shared.problems import ProblemError
from shared.security.staff_auth import Principal, Role
from shared.service import Runtime, staff

router = APIRouter(prefix="/v1", tags=["disbursement"])
Ops = Annotated[Principal, Depends(staff(Role.ops, Role.district_reviewer))]


class BankCallbackIn(BaseModel):
    model_config = ConfigDict(extra="ignore")
    idempotency_key: str = Field(max_length=64)


def _runtime(request: Request) -> Runtime:
    return request.app.state.runtime  # type: ignore[no-any-return]


@router.post("/bank/callbacks", status_code=202)
async def bank_callback(body: BankCallbackIn, request: Request) -> dict[str, str]:
    """The bank says an attempt moved. Its content is not trusted: the status is read back from the bank."""
    runtime = _runtime(request)
    gateway: BankGateway = runtime.extras["bank"]
    result = await gateway.status(body.idempotency_key)
    if result is not None:
        async with runtime.db.transaction() as session:
            await apply_bank_results(session, runtime.settings, [result])
        runtime.relay.wake()
    return {"status": "received"}


def _payment_out(p: Payment) -> dict[str, Any]:
    return {"payment_id": str(p.id), "case_id": str(p.case_id), "settlement_id": str(p.settlement_id),
            "person_ref": p.person_ref, "district_code": p.district_code, "amount": f"{p.amount:.2f}",
            "status": p.status, "attempt": p.attempt, "bank_reference": p.bank_reference,
            "failure_reason": p.failure_reason, "approved_on": p.approved_on.isoformat(),
            "updated_at": p.updated_at.isoformat()}


def _district(principal: Principal, district_code: str | None) -> str | None:
    if principal.role == Role.district_reviewer:
        if district_code and district_code != principal.district_code:
            raise ProblemError(403, "forbidden_district", "outside your district", field="district_code")
        return principal.district_code
    return district_code


@router.get("/payments")
async def list_payments(request: Request, ops: Ops, status: PaymentStatus | None = None,
                        district_code: str | None = None, limit: int = Query(100, ge=1, le=1000),
                        offset: int = Query(0, ge=0)) -> list[dict[str, Any]]:
    """Payments, newest first, by status and district."""
    query = select(Payment)
    if status:
        query = query.where(Payment.status == status.value)
    if district := _district(ops, district_code):
        query = query.where(Payment.district_code == district)
    async with _runtime(request).db.transaction() as session:
        rows = (await session.execute(query.order_by(Payment.updated_at.desc())  # type: ignore[attr-defined]
                                      .limit(limit).offset(offset))).scalars()
        return [_payment_out(p) for p in rows]


@router.get("/payments/by-case/{case_id}")
async def payment_of_case(case_id: UUID, request: Request, ops: Ops) -> dict[str, Any]:
    """The one payment of a case, with every attempt's key and outcome."""
    async with _runtime(request).db.transaction() as session:
        payment = (await session.execute(select(Payment).where(Payment.case_id == case_id))).scalar_one_or_none()
        if payment is None or (ops.role == Role.district_reviewer and payment.district_code != ops.district_code):
            raise ProblemError(404, "payment_not_found", "no payment for this case", field="case_id")
        attempts = (await session.execute(select(PaymentAttempt).where(PaymentAttempt.payment_id == payment.id)
                                          .order_by(PaymentAttempt.attempt))).scalars()
        return {**_payment_out(payment), "attempts": [
            {"attempt": a.attempt, "idempotency_key": a.idempotency_key, "status": a.status, "reason": a.reason}
            for a in attempts]}


@router.get("/reconciliation")
async def reconciliation(request: Request, ops: Ops, day: date | None = None,
                         district_code: str | None = None) -> list[dict[str, Any]]:
    """Per district and approval day: approved = settled + in flight + failed (+ cancelled); any gap is an alarm."""
    in_flight = [s.value for s in IN_FLIGHT]

    def amount_when(*statuses: str) -> Any:
        return func.coalesce(func.sum(case((Payment.status.in_(statuses), Payment.amount), else_=0)), 0)  # type: ignore[attr-defined]

    def count_when(*statuses: str) -> Any:
        return func.count(case((Payment.status.in_(statuses), 1)))  # type: ignore[attr-defined]

    query = select(
        Payment.district_code, Payment.approved_on, func.count(), func.sum(Payment.amount),
        count_when(PaymentStatus.SETTLED.value), amount_when(PaymentStatus.SETTLED.value),
        count_when(*in_flight), amount_when(*in_flight),
        count_when(PaymentStatus.FAILED.value), amount_when(PaymentStatus.FAILED.value),
        count_when(PaymentStatus.CANCELLED.value), amount_when(PaymentStatus.CANCELLED.value),
    ).group_by(Payment.district_code, Payment.approved_on).order_by(Payment.approved_on, Payment.district_code)
    if day:
        query = query.where(Payment.approved_on == day)
    if district := _district(ops, district_code):
        query = query.where(Payment.district_code == district)
    async with _runtime(request).db.transaction() as session:
        rows = (await session.execute(query)).all()
    out = []
    for d, on, n, total, sn, sa, fn, fa, xn, xa, cn, ca in rows:
        difference = total - sa - fa - xa - ca
        out.append({"district_code": d, "day": on.isoformat(),
                    "approved": {"count": n, "amount": f"{total:.2f}"},
                    "settled": {"count": sn, "amount": f"{sa:.2f}"},
                    "in_flight": {"count": fn, "amount": f"{fa:.2f}"},
                    "failed": {"count": xn, "amount": f"{xa:.2f}"},
                    "cancelled": {"count": cn, "amount": f"{ca:.2f}"},
                    "difference": f"{difference:.2f}", "alarm": difference != 0 or n != sn + fn + xn + cn})
    return out
