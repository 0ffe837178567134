"""Bank callbacks (a hint, confirmed by asking the bank), payments and the daily reconciliation."""

import hashlib
import hmac
from datetime import UTC, datetime
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Depends, Query, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import select

from disbursement.adapters.bank import BankResult, BankStatus, BankUnavailable
from disbursement.adapters.tables import Payment, PaymentAlarm, PaymentAttempt
from disbursement.domain.payment import IDEMPOTENCY_KEY_PATTERN, PaymentStatus, business_day
from disbursement.service_layer.reconciliation import reconcile
from disbursement.service_layer.statements import reconcile_statement
from shared.contracts.openapi import request_body
from shared.contracts.types import DISTRICT_CODE_PATTERN, TEXT_PATTERN, IsoDate
from shared.pagination import Offset
from shared.problems import ProblemError
from shared.request_guard import parsed_json
from shared.security.hospital_signing import hex_digest_matches
from shared.security.staff_auth import Principal, Role
from shared.service import Runtime, staff

router = APIRouter(prefix="/v1", tags=["disbursement"])
Ops = Annotated[Principal, Depends(staff(Role.ops, Role.district_reviewer))]
DistrictCode = Annotated[str | None, Query(pattern=DISTRICT_CODE_PATTERN)]


class BankCallbackIn(BaseModel):
    model_config = ConfigDict(extra="ignore")
    # Keys are ours (the bank echoes them); anything else could never match and is refused before the resolver.
    idempotency_key: str = Field(max_length=64, pattern=IDEMPOTENCY_KEY_PATTERN)
    bank_reference: str | None = Field(default=None, max_length=64, pattern=TEXT_PATTERN)
    status: BankStatus
    reason: str | None = Field(default=None, max_length=64, pattern=TEXT_PATTERN)


def _runtime(request: Request) -> Runtime:
    return request.app.state.runtime  # type: ignore[no-any-return]


@router.post("/bank/callbacks", status_code=202, openapi_extra=request_body({"application/json": BankCallbackIn}))
async def bank_callback(request: Request) -> dict[str, str]:
    """The bank's word on an attempt, signed by the bank (X-Bank-Signature: hex HMAC-SHA256 of the body).

    The signature is checked before the body is read: an unsigned callback is refused (401) whatever it holds.
    A signed one is only a hint: the resolver's next pass asks the bank for that key's status and acts on the
    bank's answer alone (a callback the bank does not confirm changes nothing and is counted in
    `medassist_bank_callbacks_unconfirmed_total`). Callbacks that never come are covered by polling by key.
    """
    runtime, raw = _runtime(request), await request.body()
    secret = runtime.settings.bank_callback_secret.get_secret_value().encode()
    if not hex_digest_matches([hmac.new(secret, raw, hashlib.sha256).hexdigest()],
                              request.headers.get("X-Bank-Signature")):
        raise ProblemError(401, "bad_signature", "the callback is not signed by the bank", field="X-Bank-Signature")
    try:
        body = BankCallbackIn.model_validate(parsed_json(request))  # strict JSON, parsed once (request_guard)
    except ValidationError as exc:
        raise RequestValidationError(exc.errors(include_input=False)) from None
    runtime.extras["hints"].report(BankResult(body.idempotency_key, body.bank_reference, body.status, body.reason))
    return {"status": "received"}


def _payment_out(p: Payment) -> dict[str, Any]:
    return {"payment_id": str(p.id), "case_id": str(p.case_id), "settlement_id": str(p.settlement_id),
            "person_ref": p.person_ref, "district_code": p.district_code, "amount": f"{p.amount:.2f}",
            "status": p.status, "attempt": p.attempt, "bank_reference": p.bank_reference,
            "failure_reason": p.failure_reason, "approved_on": p.approved_on.isoformat(),
            "updated_at": p.updated_at.isoformat()}


def _district(principal: Principal, district_code: str | None) -> str | None:
    own = principal.area.district_code
    if own is not None and district_code and district_code != own:
        raise ProblemError(403, "forbidden_district", "outside your district", field="district_code")
    return own or district_code


@router.get("/payments")
async def list_payments(request: Request, ops: Ops, status: PaymentStatus | None = None,
                        district_code: DistrictCode = None, limit: int = Query(100, ge=1, le=1000),
                        offset: Offset = 0) -> list[dict[str, Any]]:
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
        not_found = ProblemError(404, "payment_not_found", "no payment for this case", field="case_id")
        if payment is None:
            raise not_found
        ops.area.require(payment.district_code, None, not_found)
        attempts = (await session.execute(select(PaymentAttempt).where(PaymentAttempt.payment_id == payment.id)
                                          .order_by(PaymentAttempt.attempt))).scalars()
        return {**_payment_out(payment), "attempts": [
            {"attempt": a.attempt, "idempotency_key": a.idempotency_key, "status": a.status, "reason": a.reason,
             "bank_reference": a.bank_reference} for a in attempts]}


@router.post("/reconciliation/statement")
async def reconcile_with_the_bank(request: Request, ops: Annotated[Principal, Depends(staff(Role.ops))],
                                  day: Annotated[IsoDate | None, Query()] = None) -> dict[str, Any]:
    """Fetch the bank's statement for a booking day (default: today, Beijing time) and match every booked
    transfer to exactly one settled attempt, now. Alarms found are stored (GET /v1/reconciliation/alarms)."""
    try:
        return await reconcile_statement(_runtime(request), day or business_day(datetime.now(UTC)))
    except BankUnavailable:
        raise ProblemError(503, "bank_unavailable", "the bank's statement could not be fetched; try again") from None


@router.get("/reconciliation/alarms")
async def reconciliation_alarms(request: Request, ops: Ops, district_code: DistrictCode = None,
                                limit: int = Query(100, ge=1, le=1000), offset: Offset = 0) -> list[dict[str, Any]]:
    """What the bank's answers and statements showed that must not be (newest first): `double_payment`,
    `paid_after_cancel` (both with the `recovery_amount` to get back), `unknown_transfer`, `booked_twice`,
    `amount_mismatch`, `account_mismatch`, `booked_not_settled`, `contradiction`. docs/runbook.md says what to do."""
    query = select(PaymentAlarm)
    if district := _district(ops, district_code):
        query = query.where(PaymentAlarm.district_code == district)
    async with _runtime(request).db.transaction() as session:
        rows = (await session.execute(query.order_by(PaymentAlarm.raised_at.desc())  # type: ignore[attr-defined]
                                      .limit(limit).offset(offset))).scalars()
        return [{"alarm_id": str(a.id), "kind": a.kind, "idempotency_key": a.idempotency_key,
                 "payment_id": str(a.payment_id) if a.payment_id else None,
                 "case_id": str(a.case_id) if a.case_id else None, "district_code": a.district_code,
                 "amount": f"{a.amount:.2f}" if a.amount is not None else None,
                 "recovery_amount": f"{a.recovery_amount:.2f}" if a.recovery_amount is not None else None,
                 "bank_reference": a.bank_reference, "detail": a.detail, "raised_at": a.raised_at.isoformat()}
                for a in rows]


@router.get("/reconciliation")
async def reconciliation(request: Request, ops: Ops, day: Annotated[IsoDate | None, Query()] = None,
                         district_code: DistrictCode = None) -> list[dict[str, Any]]:
    """Per district and approval day: approved = settled + in flight + failed (+ cancelled); any gap is an alarm."""
    async with _runtime(request).db.transaction() as session:
        return await reconcile(session, day=day, district=_district(ops, district_code))
