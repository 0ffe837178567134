"""The resident's status view (the resident, or a counter clerk of their sub-district), SMS delivery reports,
and the messages for operations."""

import hashlib
import hmac
from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from fastapi import APIRouter, Body, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from notification.domain.messages import DeliveryReport
from notification.domain.schedule import LOCAL_TIME
from notification.entrypoints import views
from notification.entrypoints.dependencies import NotificationRuntime
from notification.entrypoints.views import MessageOut, ResidentStatus
from notification.service_layer.reports import record_delivery_reports
from notification.service_layer.unit_of_work import NotificationUnitOfWork
from shared.contracts.openapi import request_body
from shared.contracts.types import PERSON_REF_PATTERN, TEXT_PATTERN
from shared.errors import NotFound
from shared.pagination import Offset
from shared.problems import ProblemError, validated
from shared.request_guard import parsed_json
from shared.security.area import Area
from shared.security.crypto import person_ref
from shared.security.hospital_signing import hex_digest_matches
from shared.security.national_id import validate_national_id
from shared.security.staff_auth import Principal, Role
from shared.service import staff
from shared.unit_of_work import unit_of_work

router = APIRouter(prefix="/v1", tags=["notification"])
ResidentOnly = Annotated[Principal, Depends(staff(Role.resident))]
CounterClerk = Annotated[Principal, Depends(staff(Role.clerk))]
Ops = Annotated[Principal, Depends(staff(Role.ops))]
Year = Annotated[int | None, Query(ge=2000, le=2100, description="Calendar year of discharge; default: this year.")]


def _year(year: int | None) -> int:
    return year or datetime.now(LOCAL_TIME).year


async def _status(runtime: NotificationRuntime, ref: str, year: int,
                  area: Area | None = None) -> ResidentStatus | None:
    wording = runtime.deps.wording
    return await views.resident_status(runtime.db, ref, year, wording.templates, wording.hospital_names, area)


@router.get("/me/settlements", response_model=ResidentStatus)
async def my_settlements(runtime: NotificationRuntime, resident: ResidentOnly, year: Year = None) -> ResidentStatus:
    """The resident's own settlements of a year: each decision with its reason in plain words, the assistance,
    the review and the payment, and the messages sent. The token's subject is the person; nobody else shows."""
    status = await _status(runtime, resident.subject, _year(year))
    assert status is not None  # only a clerk's view is confined to an area
    return status


class LookupIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    national_id: str = Field(max_length=18)
    year: int | None = Field(default=None, ge=2000, le=2100)


LookupBody = Annotated[LookupIn, Body(openapi_examples={"at the counter": {"value": {
    "national_id": "310110198001011236", "year": 2026}}})]


@router.post("/residents:lookup", response_model=ResidentStatus)
async def resident_at_the_counter(body: LookupBody, runtime: NotificationRuntime,
                                  clerk: CounterClerk) -> ResidentStatus:
    """The same view, shown by a counter clerk to a person of the clerk's sub-district (national ID in the body,
    never in a URL). Settlements of other sub-districts are left out; a person with none here is not found."""
    national_id = validate_national_id(body.national_id, field="national_id")
    ref = person_ref(runtime.deps.pepper, national_id)
    status = await _status(runtime, ref, _year(body.year), area=clerk.area)
    if status is None:
        raise NotFound("resident_not_found", "no settlements of this person in your sub-district",
                       field="national_id")
    return status


class DeliveryReportIn(BaseModel):
    model_config = ConfigDict(extra="ignore")
    idempotency_key: str = Field(pattern=r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
    status: Literal["delivered", "undeliverable"]
    reason: str | None = Field(default=None, max_length=64, pattern=TEXT_PATTERN)


class DeliveryReportBatchIn(BaseModel):
    model_config = ConfigDict(extra="ignore")
    reports: list[DeliveryReportIn] = Field(min_length=1, max_length=1000)


@router.post("/sms/delivery-reports", status_code=202, openapi_extra=request_body(
    {"application/json": TypeAdapter(DeliveryReportIn | DeliveryReportBatchIn).json_schema()}))
async def delivery_report(request: Request, runtime: NotificationRuntime) -> dict[str, Any]:
    """The gateway's delivery report for a message, or for many at once (`{"reports": [...]}`, as the gateway
    sends them), signed by the gateway (X-Sms-Signature: hex HMAC-SHA256 of the body, so of every report in
    it). The signature is checked before the body is read; a batch is validated whole (one invalid report
    refuses it all, 422) and recorded in one transaction. `moved`: the messages it moved (a report of an
    unknown or already final message moves none)."""
    raw = await request.body()
    secret = runtime.deps.settings.sms_callback_secret.get_secret_value().encode()
    if not hex_digest_matches([hmac.new(secret, raw, hashlib.sha256).hexdigest()],
                              request.headers.get("X-Sms-Signature")):
        raise ProblemError(401, "bad_signature", "the report is not signed by the gateway", field="X-Sms-Signature")
    body = parsed_json(request)  # strict JSON, parsed once (request_guard)
    reports = validated(DeliveryReportBatchIn, body).reports if isinstance(body, dict) and "reports" in body \
        else [validated(DeliveryReportIn, body)]
    async with unit_of_work(runtime.db, NotificationUnitOfWork) as uow:
        moved = await record_delivery_reports(uow, [
            DeliveryReport(UUID(r.idempotency_key), r.status, r.reason) for r in reports])
    return {"status": "received", "moved": moved}


@router.get("/messages", response_model=list[MessageOut])
async def list_messages(runtime: NotificationRuntime, ops: Ops,
                        person_ref: Annotated[str | None, Query(pattern=PERSON_REF_PATTERN)] = None,
                        status: Annotated[str | None, Query(max_length=16, pattern=r"^[a-z_]+$")] = None,
                        limit: int = Query(100, ge=1, le=1000), offset: Offset = 0) -> list[MessageOut]:
    """Messages in the order their events happened, by person and status (no phone number and no text:
    operations need neither)."""
    return await views.messages(runtime.db, person_ref, status, limit, offset)


@router.get("/messages/summary")
async def messages_summary(runtime: NotificationRuntime, ops: Ops) -> dict[str, Any]:
    """Messages by moment and status, and the quiet hours in force."""
    return {"quiet_hours": str(runtime.deps.wording.quiet), "by_moment": await views.messages_by_moment(runtime.db)}
