"""For operations staff: the flow of settlements per hour, and one settlement's journey by its id.

Intake records every step each settlement takes (its status view follows every downstream topic), so the
flow through the whole system is counted here. No names or national IDs: ids, statuses and times only.
"""

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Depends, Query, Request
from sqlalchemy import func, select

from intake.adapters.tables import JourneyStep, Settlement
from shared.problems import ProblemError
from shared.security.staff_auth import Principal, Role
from shared.service import Runtime, staff

router = APIRouter(prefix="/v1/ops", tags=["ops"])
Ops = Annotated[Principal, Depends(staff(Role.ops))]


def _runtime(request: Request) -> Runtime:
    return request.app.state.runtime  # type: ignore[no-any-return]


@router.get("/flow")
async def flow(request: Request, ops: Ops, hours: int = Query(24, ge=1, le=168)) -> dict[str, Any]:
    """Journey steps per hour and status over the last `hours` hours (received, eligible, parked, calculated,
    approved, paid, payment_failed, ...), oldest hour first, with the totals."""
    since = (datetime.now(UTC) - timedelta(hours=hours - 1)).replace(minute=0, second=0, microsecond=0)
    hour = func.date_trunc("hour", JourneyStep.at)
    async with _runtime(request).db.transaction() as session:
        rows = (await session.execute(select(hour, JourneyStep.status, func.count())
                                      .where(JourneyStep.at >= since).group_by(hour, JourneyStep.status))).all()
    per_hour: dict[datetime, dict[str, int]] = {}
    totals: dict[str, int] = {}
    for at, status, count in rows:
        per_hour.setdefault(at, {})[status] = count
        totals[status] = totals.get(status, 0) + count
    return {"since": since.isoformat(), "totals": totals,
            "hours": [{"hour": at.isoformat(), "counts": per_hour[at]} for at in sorted(per_hour)]}


@router.get("/settlements/{settlement_id}")
async def journey(settlement_id: UUID, request: Request, ops: Ops) -> dict[str, Any]:
    """Where one settlement is, and every step it took, by its settlement id."""
    async with _runtime(request).db.transaction() as session:
        settlement = await session.get(Settlement, settlement_id)
        if settlement is None:
            raise ProblemError(404, "settlement_not_found", "no such settlement", field="settlement_id")
        steps = (await session.execute(select(JourneyStep).where(JourneyStep.settlement_id == settlement_id)
                                       .order_by(JourneyStep.at, JourneyStep.id))).scalars().all()
    return {
        "settlement_id": str(settlement.id), "hospital_id": settlement.hospital_id,
        "hospital_settlement_id": settlement.hospital_settlement_id, "status": settlement.status,
        "reason": settlement.status_reason, "discharge_date": settlement.discharge_date.isoformat(),
        "assistance": None if settlement.assistance is None else f"{settlement.assistance:.2f}",
        "received_at": settlement.received_at.isoformat(),
        "journey": [{"status": s.status, "reason": s.reason, "at": s.at.isoformat()} for s in steps],
    }
