"""The resident's status view (the resident, or a counter clerk of their sub-district), SMS delivery reports,
and the messages for operations."""

import hashlib
import hmac
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, Query, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import func, select, update
from sqlmodel import col

from notification.adapters.metrics import MESSAGE_OUTCOMES
from notification.adapters.tables import MESSAGES, Message
from notification.domain.schedule import LOCAL_TIME
from notification.entrypoints.views import ResidentStatus, resident_status
from notification.service_layer.follow import Wording
from shared.contracts.openapi import request_body
from shared.contracts.types import PERSON_REF_PATTERN, TEXT_PATTERN
from shared.pagination import Offset
from shared.problems import ProblemError
from shared.security.crypto import person_ref
from shared.security.national_id import validate_national_id
from shared.security.staff_auth import Principal, Role
from shared.service import Runtime, staff

router = APIRouter(prefix="/v1", tags=["notification"])
ResidentOnly = Annotated[Principal, Depends(staff(Role.resident))]
CounterClerk = Annotated[Principal, Depends(staff(Role.clerk))]
Ops = Annotated[Principal, Depends(staff(Role.ops))]
Year = Annotated[int | None, Query(ge=2000, le=2100, description="Calendar year of discharge; default: this year.")]


def _runtime(request: Request) -> Runtime:
    return request.app.state.runtime  # type: ignore[no-any-return]


def _year(year: int | None) -> int:
    return year or datetime.now(LOCAL_TIME).year


async def _status(request: Request, ref: str, year: int, subdistrict: str | None = None) -> ResidentStatus | None:
    runtime = _runtime(request)
    wording: Wording = runtime.extras["wording"]
    async with runtime.db.transaction() as session:
        return await resident_status(session, ref, year, wording.templates, wording.hospital_names, subdistrict)


@router.get("/me/settlements", response_model=ResidentStatus)
async def my_settlements(request: Request, resident: ResidentOnly, year: Year = None) -> ResidentStatus:
    """The resident's own settlements of a year: each decision with its reason in plain words, the assistance,
    the review and the payment, and the messages sent. The token's subject is the person; nobody else shows."""
    status = await _status(request, resident.subject, _year(year))
    assert status is not None  # only a clerk's view is narrowed to a sub-district
    return status


class LookupIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    national_id: str = Field(max_length=18)
    year: int | None = Field(default=None, ge=2000, le=2100)


LookupBody = Annotated[LookupIn, Body(openapi_examples={"at the counter": {"value": {
    "national_id": "310110198001011236", "year": 2026}}})]


@router.post("/residents:lookup", response_model=ResidentStatus)
async def resident_at_the_counter(body: LookupBody, request: Request, clerk: CounterClerk) -> ResidentStatus:
    """The same view, shown by a counter clerk to a person of the clerk's sub-district (national ID in the body,
    never in a URL). Settlements of other sub-districts are left out; a person with none here is not found."""
    national_id = validate_national_id(body.national_id, field="national_id")
    ref = person_ref(_runtime(request).settings.person_ref_pepper.get_secret_value().encode(), national_id)
    status = await _status(request, ref, _year(body.year), subdistrict=clerk.subdistrict_code)
    if status is None:
        raise ProblemError(404, "resident_not_found", "no settlements of this person in your sub-district",
                           field="national_id")
    return status


class DeliveryReportIn(BaseModel):
    model_config = ConfigDict(extra="ignore")
    idempotency_key: str = Field(pattern=r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
    status: Literal["delivered", "undeliverable"]
    reason: str | None = Field(default=None, max_length=64, pattern=TEXT_PATTERN)


@router.post("/sms/delivery-reports", status_code=202,
             openapi_extra=request_body({"application/json": DeliveryReportIn}))
async def delivery_report(request: Request) -> dict[str, str]:
    """The gateway's delivery report for a message, signed by the gateway (X-Sms-Signature: hex HMAC-SHA256 of
    the body). The signature is checked before the body is read."""
    runtime, raw = _runtime(request), await request.body()
    secret = runtime.settings.sms_callback_secret.get_secret_value().encode()
    if not hmac.compare_digest(hmac.new(secret, raw, hashlib.sha256).hexdigest(),
                               request.headers.get("X-Sms-Signature", "")):
        raise ProblemError(401, "bad_signature", "the report is not signed by the gateway", field="X-Sms-Signature")
    try:
        report = DeliveryReportIn.model_validate_json(raw)
    except ValidationError as exc:
        raise RequestValidationError(exc.errors(include_input=False)) from None
    now = datetime.now(UTC)
    async with runtime.db.transaction() as session:
        changed = (await session.execute(
            update(MESSAGES).where(MESSAGES.c.id == report.idempotency_key,
                                   MESSAGES.c.status.in_(("sending", "sent")))
            .values(status=report.status, failure_reason=report.reason, updated_at=now,
                    delivered_at=now if report.status == "delivered" else None))).rowcount  # type: ignore[attr-defined]
    if changed:
        MESSAGE_OUTCOMES.labels(report.status).inc()
    return {"status": "received"}


class MessageOut(BaseModel):
    message_id: str
    person_ref: str
    settlement_id: str | None
    moment: str
    template_version: int
    status: str
    attempts: int
    failure_reason: str | None
    not_before: str
    created_at: str
    sent_at: str | None
    delivered_at: str | None


@router.get("/messages", response_model=list[MessageOut])
async def list_messages(request: Request, ops: Ops,
                        person_ref: Annotated[str | None, Query(pattern=PERSON_REF_PATTERN)] = None,
                        status: Annotated[str | None, Query(max_length=16, pattern=r"^[a-z_]+$")] = None,
                        limit: int = Query(100, ge=1, le=1000), offset: Offset = 0) -> list[MessageOut]:
    """Messages in the order their events happened, by person and status (no phone number and no text:
    operations need neither)."""
    query = select(Message)
    if person_ref:
        query = query.where(col(Message.person_ref) == person_ref)
    if status:
        query = query.where(col(Message.status) == status)
    async with _runtime(request).db.transaction() as session:
        query = query.order_by(col(Message.occurred_at), col(Message.seq)).limit(limit).offset(offset)
        rows = (await session.execute(query)).scalars()
        return [MessageOut(message_id=str(m.id), person_ref=m.person_ref,
                           settlement_id=str(m.settlement_id) if m.settlement_id else None, moment=m.moment,
                           template_version=m.template_version, status=m.status, attempts=m.attempts,
                           failure_reason=m.failure_reason, not_before=m.not_before.isoformat(),
                           created_at=m.created_at.isoformat(),
                           sent_at=m.sent_at.isoformat() if m.sent_at else None,
                           delivered_at=m.delivered_at.isoformat() if m.delivered_at else None) for m in rows]


@router.get("/messages/summary")
async def messages_summary(request: Request, ops: Ops) -> dict[str, Any]:
    """Messages by moment and status, and the quiet hours in force."""
    runtime = _runtime(request)
    async with runtime.db.transaction() as session:
        rows = (await session.execute(select(col(Message.moment), col(Message.status), func.count())
                                      .group_by(col(Message.moment), col(Message.status)))).all()
    by: dict[str, dict[str, int]] = {}
    for moment, status, count in rows:
        by.setdefault(moment, {})[status] = count
    return {"quiet_hours": str(runtime.extras["quiet_hours"]), "by_moment": by}
