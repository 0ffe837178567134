"""Hospital-facing API: push settlements (one or a batch), reverse them, read their status."""

from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Path, Query, Request, Response
from pydantic import BaseModel

from intake.domain.journey import Journey
from intake.domain.submission import HOSPITAL_SETTLEMENT_ID_PATTERN, ReversalIn, SettlementBatchIn, SettlementIn
from intake.entrypoints import views
from intake.entrypoints.dependencies import IntakeRuntime
from intake.entrypoints.hospital_auth import HospitalId
from intake.entrypoints.views import SettlementStatusOut
from intake.service_layer.accept import Accepted, accept_settlements, reverse_settlement, settlement_not_found
from intake.service_layer.unit_of_work import IntakeUnitOfWork
from shared.contracts.openapi import inline_schema, request_body
from shared.pagination import Offset
from shared.problems import ProblemError, validated, validated_items
from shared.request_guard import parsed_json
from shared.unit_of_work import unit_of_work

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


def _json_body(request: Request) -> Any:
    # Parsed once, strictly (no duplicate keys, bounded depth), by shared.request_guard; an empty body is None.
    return parsed_json(request)


def _out(a: Accepted) -> dict[str, object]:
    """`AcceptedOut` as JSON values, made directly: the answer is written by orjson, not built as pydantic models
    and serialized again (`response_model` still documents it)."""
    return {"index": a.index, "settlement_id": str(a.settlement_id), "hospital_settlement_id": a.hospital_settlement_id,
            "outcome": a.outcome, "status": a.status}


def _answer(document: dict[str, object]) -> Response:
    return Response(orjson.dumps(document), status_code=202, media_type="application/json")


async def _accept(runtime: IntakeRuntime, hospital_id: str, items: list[SettlementIn]) -> list[Accepted]:
    async with unit_of_work(runtime.db, IntakeUnitOfWork) as uow:
        return await accept_settlements(uow, runtime.deps, hospital_id, items)


@router.post("/settlements", status_code=202, response_model=AcceptedOut,
             openapi_extra=request_body({"application/json": SettlementIn},
                                        examples={"application/json": SETTLEMENT_EXAMPLE}))
async def push_settlement(request: Request, runtime: IntakeRuntime, hospital_id: HospitalId) -> Response:
    """Push one settlement. Retrying the same body is safe; the same id with another body is a 409."""
    item = validated(SettlementIn, _json_body(request))
    return _answer(_out((await _accept(runtime, hospital_id, [item]))[0]))


@router.post("/settlements:batch", status_code=202, response_model=BatchOut,
             openapi_extra=request_body({"application/json": {
                 "type": "object", "additionalProperties": False, "required": ["items"],
                 "properties": {"items": {"type": "array", "minItems": 1, "items": inline_schema(SettlementIn)}}}},
                 examples={"application/json": {"items": [SETTLEMENT_EXAMPLE]}}))
async def push_settlement_batch(request: Request, runtime: IntakeRuntime, hospital_id: HospitalId) -> Response:
    """Push up to `max_batch_items` settlements: all are accepted, or none (errors name the item index)."""
    batch = validated(SettlementBatchIn, _json_body(request))
    limit = runtime.deps.settings.max_batch_items
    if len(batch.items) > limit:
        raise ProblemError(413, "batch_too_large", f"a batch holds at most {limit} settlements", field="items")
    items = validated_items(SettlementIn, batch.items, field="items")
    return _batch_answer(await _accept(runtime, hospital_id, items))


def _batch_answer(results: list[Accepted]) -> Response:
    created = sum(r.outcome == "created" for r in results)
    return _answer({"accepted": len(results), "created": created, "duplicates": len(results) - created,
                    "results": [_out(r) for r in results]})


@router.post("/settlements/{hospital_settlement_id}/reversal", response_model=SettlementStatusOut,
             openapi_extra=request_body({"application/json": ReversalIn},
                                        examples={"application/json": {"reason": "voided_at_hospital"}}))
async def reverse(hospital_settlement_id: HospitalSettlementId, request: Request, runtime: IntakeRuntime,
                  hospital_id: HospitalId) -> SettlementStatusOut:
    """Void a settlement. Undone downstream; if already paid, the district gets a recovery record."""
    body = validated(ReversalIn, _json_body(request))
    async with unit_of_work(runtime.db, IntakeUnitOfWork) as uow:
        await reverse_settlement(uow, hospital_id, hospital_settlement_id, body.reason)
    return await _status(runtime, hospital_id, hospital_settlement_id, with_journey=False)


@router.get("/settlements/{hospital_settlement_id}", response_model=SettlementStatusOut)
async def settlement_status(hospital_settlement_id: HospitalSettlementId, runtime: IntakeRuntime,
                            hospital_id: HospitalId) -> SettlementStatusOut:
    """Where one of this hospital's settlements is in its journey, with the timeline."""
    return await _status(runtime, hospital_id, hospital_settlement_id, with_journey=True)


@router.get("/settlements", response_model=list[SettlementStatusOut])
async def list_settlements(runtime: IntakeRuntime, hospital_id: HospitalId, status: Journey | None = None,
                           limit: int = Query(100, ge=1, le=1000), offset: Offset = 0
                           ) -> list[SettlementStatusOut]:
    """This hospital's settlements, newest first, optionally by status."""
    return await views.hospital_settlements(runtime.db, hospital_id, status, limit, offset)


@router.get("/summary")
async def summary(runtime: IntakeRuntime, hospital_id: HospitalId) -> dict[str, int]:
    """Count of this hospital's settlements by status."""
    return await views.hospital_summary(runtime.db, hospital_id)


async def _status(runtime: IntakeRuntime, hospital_id: str, hospital_settlement_id: str,
                  with_journey: bool) -> SettlementStatusOut:
    status = await views.settlement_status(runtime.db, hospital_id, hospital_settlement_id, with_journey)
    if status is None:
        raise settlement_not_found()
    return status
