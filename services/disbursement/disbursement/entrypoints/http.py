"""Bank callbacks (a hint, confirmed by asking the bank), payments and the daily reconciliation."""

import hashlib
import hmac
from datetime import UTC, datetime
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from disbursement.adapters.bank import BankResult, BankStatus, BankUnavailable
from disbursement.dependencies import DisbursementDeps
from disbursement.domain.payment import IDEMPOTENCY_KEY_PATTERN, PaymentStatus, business_day
from disbursement.entrypoints import views
from disbursement.service_layer.reconciliation import district_asked, reconcile
from disbursement.service_layer.statements import reconcile_statement
from disbursement.service_layer.unit_of_work import DisbursementUnitOfWork, units_of
from shared.contracts.openapi import request_body
from shared.contracts.types import DISTRICT_CODE_PATTERN, TEXT_PATTERN, IsoDate
from shared.pagination import Offset
from shared.problems import ProblemError, validated
from shared.request_guard import parsed_json
from shared.security.hospital_signing import hex_digest_matches
from shared.security.staff_auth import Principal, Role
from shared.service import Runtime, staff
from shared.unit_of_work import unit_of_work

router = APIRouter(prefix="/v1", tags=["disbursement"])
Ops = Annotated[Principal, Depends(staff(Role.ops, Role.district_reviewer))]
DistrictCode = Annotated[str | None, Query(pattern=DISTRICT_CODE_PATTERN)]
Limit = Annotated[int, Query(ge=1, le=1000)]


def _runtime(request: Request) -> Runtime[DisbursementDeps]:
    runtime: Runtime[DisbursementDeps] = request.app.state.runtime
    return runtime


Service = Annotated[Runtime[DisbursementDeps], Depends(_runtime)]


class BankCallbackIn(BaseModel):
    model_config = ConfigDict(extra="ignore")
    # Keys are ours (the bank echoes them); anything else could never match and is refused before the resolver.
    idempotency_key: str = Field(max_length=64, pattern=IDEMPOTENCY_KEY_PATTERN)
    bank_reference: str | None = Field(default=None, max_length=64, pattern=TEXT_PATTERN)
    status: BankStatus
    reason: str | None = Field(default=None, max_length=64, pattern=TEXT_PATTERN)


class BankCallbackBatchIn(BaseModel):
    """The bank's word on many attempts in one callback (the simulator reports each batch it settled so)."""

    model_config = ConfigDict(extra="ignore")
    transfers: list[BankCallbackIn] = Field(min_length=1, max_length=1000)


@router.post("/bank/callbacks", status_code=202, openapi_extra=request_body(
    {"application/json": TypeAdapter(BankCallbackIn | BankCallbackBatchIn).json_schema()}))
async def bank_callback(request: Request, service: Service) -> dict[str, str]:
    """The bank's word on an attempt, or on many at once (`{"transfers": [...]}`), signed by the bank
    (X-Bank-Signature: hex HMAC-SHA256 of the body).

    The signature is checked before the body is read: an unsigned callback is refused (401) whatever it holds.
    A signed one is only a hint: the resolver's next pass asks the bank for that key's status and acts on the
    bank's answer alone (a callback the bank does not confirm changes nothing and is counted in
    `medassist_bank_callbacks_unconfirmed_total`). Callbacks that never come are covered by polling by key.
    """
    raw = await request.body()
    secret = service.deps.settings.bank_callback_secret.get_secret_value().encode()
    if not hex_digest_matches([hmac.new(secret, raw, hashlib.sha256).hexdigest()],
                              request.headers.get("X-Bank-Signature")):
        raise ProblemError(401, "bad_signature", "the callback is not signed by the bank", field="X-Bank-Signature")
    raw_body = parsed_json(request)  # strict JSON, parsed once (request_guard)
    reports = validated(BankCallbackBatchIn, raw_body).transfers if isinstance(raw_body, dict) and (
        "transfers" in raw_body) else [validated(BankCallbackIn, raw_body)]
    for report in reports:
        service.deps.hints.report(BankResult(report.idempotency_key, report.bank_reference, report.status,
                                             report.reason))
    return {"status": "received"}


@router.get("/payments")
async def list_payments(service: Service, ops: Ops, status: PaymentStatus | None = None,
                        district_code: DistrictCode = None, limit: Limit = 100,
                        offset: Offset = 0) -> list[dict[str, Any]]:
    """Payments, newest first, by status and district."""
    district = district_asked(ops.area, district_code)
    async with unit_of_work(service.db, DisbursementUnitOfWork) as uow:
        return await views.payments(uow, status=status, district=district, limit=limit, offset=offset)


@router.get("/payments/by-case/{case_id}")
async def payment_of_case(case_id: UUID, service: Service, ops: Ops) -> dict[str, Any]:
    """The one payment of a case, with every attempt's key and outcome."""
    async with unit_of_work(service.db, DisbursementUnitOfWork) as uow:
        return await views.payment_of_case(uow, ops.area, case_id)


@router.post("/reconciliation/statement")
async def reconcile_with_the_bank(service: Service, ops: Annotated[Principal, Depends(staff(Role.ops))],
                                  day: Annotated[IsoDate | None, Query()] = None) -> dict[str, Any]:
    """Fetch the bank's statement for a booking day (default: today, Beijing time) and match every booked
    transfer to exactly one settled attempt, now. Alarms found are stored (GET /v1/reconciliation/alarms)."""
    try:
        return await reconcile_statement(units_of(service.db), service.deps, day or business_day(datetime.now(UTC)))
    except BankUnavailable:
        raise ProblemError(503, "bank_unavailable", "the bank's statement could not be fetched; try again") from None


@router.get("/reconciliation/alarms")
async def reconciliation_alarms(service: Service, ops: Ops, district_code: DistrictCode = None,
                                limit: Limit = 100, offset: Offset = 0) -> list[dict[str, Any]]:
    """What the bank's answers and statements showed that must not be (newest first): `double_payment`,
    `paid_after_cancel` (both with the `recovery_amount` to get back), `unknown_transfer`, `booked_twice`,
    `amount_mismatch`, `account_mismatch`, `booked_not_settled`, `contradiction`. docs/runbook.md says what to do."""
    district = district_asked(ops.area, district_code)
    async with unit_of_work(service.db, DisbursementUnitOfWork) as uow:
        return await views.alarms(uow, district=district, limit=limit, offset=offset)


@router.get("/reconciliation")
async def reconciliation(service: Service, ops: Ops, day: Annotated[IsoDate | None, Query()] = None,
                         district_code: DistrictCode = None) -> list[dict[str, Any]]:
    """Per district and approval day: approved = settled + in flight + failed (+ cancelled); any gap is an alarm."""
    async with unit_of_work(service.db, DisbursementUnitOfWork) as uow:
        return await reconcile(uow, ops.area, day=day, district_code=district_code)
