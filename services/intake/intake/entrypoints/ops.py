"""For operations staff: the flow of settlements per hour, and one settlement's journey by its id.

Intake records every step each settlement takes (its status view follows every downstream topic), so the
flow through the whole system is counted here. No names or national IDs: ids, statuses and times only.
"""

from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Depends, Query

from intake.entrypoints import views
from intake.entrypoints.dependencies import IntakeRuntime
from shared.errors import NotFound
from shared.security.staff_auth import Principal, Role
from shared.service import staff

router = APIRouter(prefix="/v1/ops", tags=["ops"])
Ops = Annotated[Principal, Depends(staff(Role.ops))]


@router.get("/flow")
async def flow(runtime: IntakeRuntime, ops: Ops, hours: int = Query(24, ge=1, le=168)) -> dict[str, Any]:
    """Journey steps per hour and status over the last `hours` hours (received, eligible, parked, calculated,
    approved, paid, payment_failed, ...), oldest hour first, with the totals."""
    return await views.flow(runtime.db, hours)


@router.get("/settlements/{settlement_id}")
async def journey(settlement_id: UUID, runtime: IntakeRuntime, ops: Ops) -> dict[str, Any]:
    """Where one settlement is, and every step it took, by its settlement id."""
    found = await views.journey(runtime.db, settlement_id)
    if found is None:
        raise NotFound("settlement_not_found", "no such settlement", field="settlement_id")
    return found
