"""Hospital-facing API: push settlements (one or a batch), reverse them, read their status."""

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from pydantic import BaseModel, Field, ValidationError
from sqlalchemy import func, select

from intake.adapters.tables import JourneyStep, Settlement
from intake.domain.journey import Journey
from intake.domain.settlement import HOSPITAL_SETTLEMENT_ID_PATTERN, ReversalIn, SettlementBatchIn, SettlementIn
from intake.entrypoints.hospital_auth import HospitalId
from intake.service_layer.accept import Accepted, accept_settlements, reverse_settlement
from shared.contracts.openapi import inline_schema, request_body
from shared.pagination import Offset
from shared.problems import ProblemError
from shared.request_guard import parsed_json
from shared.service import Runtime

router = APIRouter(prefix="/v1", tags=["settlements"])
# An id no settlement can have is refused as input rather than looked up.
HospitalSettlementId = Annotated[str, Path(pattern=HOSPITAL_SETTLEMENT_ID_PATTERN)]
SETTLEMENT_EXAMPLE = {
    "hospital_settlement_id": "S-2026-000123", "hospital_level": 3, "visit_type": "inpatient",
    "admission_date": "2026-03-02", "discharge_date": "2026-03-09",
    "patient": {"national_id": "310110198001011236", "name": "王芳"},
    "total_amount": "12000.00", "policy_scope_amount": "10000.00",
    "basic_insurance_paid": "6000.00", "critical_illness_paid": "1500.00",
}


class AcceptedOut(BaseModel):
    index: int
    settlement_id: str
    hospital_settlement_id: str
    outcome: str
    status: str


class BatchOut(BaseModel):
    accepted: int
    created: int
    duplicates: int
    results: list[AcceptedOut]


class JourneyStepOut(BaseModel):
    status: str
    reason: str | None
    at: str


class SettlementStatusOut(BaseModel):
    settlement_id: str
    hospital_settlement_id: str
    status: str
    reason: str | None = Field(description="Why the settlement is in this status: the status's own reason (a "
                               "rejection's code, a failed payment's cause, the hospital's reversal reason), or else "
                               "the eligibility reason, which later steps never erase.")
    eligibility_reason: str | None = Field(description="The latest screening decision's reason (eligible, "
                                           "no_consent, ...); null until screened.")
    assistance: str | None
    discharge_date: str
    received_at: str
    updated_at: str
    journey: list[JourneyStepOut] | None = None


def _parse(model: type[BaseModel], raw: Any, prefix: str) -> Any:
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        errors = [{"field": ".".join(str(p) for p in (prefix, *e["loc"]) if p != ""), "code": e["type"],
                   "message": e["msg"]} for e in exc.errors(include_input=False)]
        raise ProblemError(422, "invalid_input", "the request was refused whole; nothing was stored",
                           field=errors[0]["field"], errors=errors) from None


def _json_body(request: Request) -> Any:
    # Parsed once, strictly (no duplicate keys, bounded depth), by shared.request_guard; an empty body is None.
    return parsed_json(request)


def _out(a: Accepted) -> AcceptedOut:
    return AcceptedOut(index=a.index, settlement_id=str(a.settlement_id),
                       hospital_settlement_id=a.hospital_settlement_id, outcome=a.outcome, status=a.status)


async def _accept(request: Request, hospital_id: str, items: list[SettlementIn]) -> list[Accepted]:
    runtime: Runtime = request.app.state.runtime
    async with runtime.db.transaction() as session:
        results = await accept_settlements(session, runtime.settings, runtime.extras["cipher"],
                                           runtime.extras["pepper"], hospital_id, items)
    return results


@router.post("/settlements", status_code=202, response_model=AcceptedOut,
             openapi_extra=request_body({"application/json": SettlementIn},
                                        examples={"application/json": SETTLEMENT_EXAMPLE}))
async def push_settlement(request: Request, hospital_id: HospitalId) -> AcceptedOut:
    """Push one settlement. Retrying the same body is safe; the same id with another body is a 409."""
    item = _parse(SettlementIn, _json_body(request), "")
    return _out((await _accept(request, hospital_id, [item]))[0])


@router.post("/settlements:batch", status_code=202, response_model=BatchOut,
             openapi_extra=request_body({"application/json": {
                 "type": "object", "additionalProperties": False, "required": ["items"],
                 "properties": {"items": {"type": "array", "minItems": 1, "items": inline_schema(SettlementIn)}}}},
                 examples={"application/json": {"items": [SETTLEMENT_EXAMPLE]}}))
async def push_settlement_batch(request: Request, hospital_id: HospitalId) -> BatchOut:
    """Push up to `max_batch_items` settlements: all are accepted, or none (errors name the item index)."""
    batch = _parse(SettlementBatchIn, _json_body(request), "")
    limit = request.app.state.runtime.settings.max_batch_items
    if len(batch.items) > limit:
        raise ProblemError(413, "batch_too_large", f"a batch holds at most {limit} settlements", field="items")
    items, errors = [], []
    for index, raw in enumerate(batch.items):
        try:
            items.append(SettlementIn.model_validate(raw))
        except ValidationError as exc:
            errors += [{"field": ".".join(str(p) for p in ("items", index, *e["loc"])), "code": e["type"],
                        "message": e["msg"], "index": index} for e in exc.errors(include_input=False)]
    if errors:
        raise ProblemError(422, "invalid_input", f"{len({e['index'] for e in errors})} item(s) invalid; "
                           "the batch was refused whole and nothing was stored", field=errors[0]["field"],
                           errors=errors)
    results = await _accept(request, hospital_id, items)
    created = sum(r.outcome == "created" for r in results)
    return BatchOut(accepted=len(results), created=created, duplicates=len(results) - created,
                    results=[_out(r) for r in results])


@router.post("/settlements/{hospital_settlement_id}/reversal", response_model=SettlementStatusOut,
             openapi_extra=request_body({"application/json": ReversalIn},
                                        examples={"application/json": {"reason": "voided_at_hospital"}}))
async def reverse(hospital_settlement_id: HospitalSettlementId, request: Request,
                  hospital_id: HospitalId) -> SettlementStatusOut:
    """Void a settlement. Undone downstream; if already paid, the district gets a recovery record."""
    body = _parse(ReversalIn, _json_body(request), "")
    runtime: Runtime = request.app.state.runtime
    async with runtime.db.transaction() as session:
        settlement = await reverse_settlement(session, runtime.settings, hospital_id, hospital_settlement_id,
                                              body.reason)
    return await _status(request, hospital_id, settlement.hospital_settlement_id, with_journey=False)


@router.get("/settlements/{hospital_settlement_id}", response_model=SettlementStatusOut)
async def settlement_status(hospital_settlement_id: HospitalSettlementId, request: Request,
                            hospital_id: HospitalId) -> SettlementStatusOut:
    """Where one of this hospital's settlements is in its journey, with the timeline."""
    return await _status(request, hospital_id, hospital_settlement_id, with_journey=True)


@router.get("/settlements", response_model=list[SettlementStatusOut])
async def list_settlements(request: Request, hospital_id: HospitalId, status: Journey | None = None,
                           limit: int = Query(100, ge=1, le=1000), offset: Offset = 0
                           ) -> list[SettlementStatusOut]:
    """This hospital's settlements, newest first, optionally by status."""
    runtime: Runtime = request.app.state.runtime
    query = select(Settlement).where(Settlement.hospital_id == hospital_id)
    if status:
        query = query.where(Settlement.status == status.value)
    query = query.order_by(Settlement.received_at.desc()).limit(limit).offset(offset)  # type: ignore[attr-defined]
    async with runtime.db.transaction() as session:
        rows = (await session.execute(query)).scalars().all()
    return [_status_out(s) for s in rows]


@router.get("/summary")
async def summary(request: Request, hospital_id: HospitalId) -> dict[str, int]:
    """Count of this hospital's settlements by status."""
    runtime: Runtime = request.app.state.runtime
    async with runtime.db.transaction() as session:
        rows = (await session.execute(
            select(Settlement.status, func.count()).where(Settlement.hospital_id == hospital_id)
            .group_by(Settlement.status))).all()
    return {status: count for status, count in rows}


def _status_out(s: Settlement, journey: list[JourneyStep] | None = None) -> SettlementStatusOut:
    return SettlementStatusOut(
        settlement_id=str(s.id), hospital_settlement_id=s.hospital_settlement_id, status=s.status,
        reason=s.status_reason or s.eligibility_reason, eligibility_reason=s.eligibility_reason,
        assistance=None if s.assistance is None else f"{s.assistance:.2f}",
        discharge_date=s.discharge_date.isoformat(), received_at=s.received_at.isoformat(),
        updated_at=s.updated_at.isoformat(),
        journey=None if journey is None else [
            JourneyStepOut(status=j.status, reason=j.reason, at=j.at.isoformat()) for j in journey],
    )


async def _status(request: Request, hospital_id: str, hospital_settlement_id: str,
                  with_journey: bool) -> SettlementStatusOut:
    runtime: Runtime = request.app.state.runtime
    async with runtime.db.transaction() as session:
        settlement = (await session.execute(select(Settlement).where(
            Settlement.hospital_id == hospital_id,
            Settlement.hospital_settlement_id == hospital_settlement_id))).scalar_one_or_none()
        if settlement is None:
            # The same answer whether the id is unknown or another hospital's: nothing leaks.
            raise ProblemError(404, "settlement_not_found", "no such settlement for this hospital",
                               field="hospital_settlement_id")
        journey = None
        if with_journey:
            journey = list((await session.execute(select(JourneyStep).where(
                JourneyStep.settlement_id == settlement.id).order_by(JourneyStep.id))).scalars().all())
    return _status_out(settlement, journey)
