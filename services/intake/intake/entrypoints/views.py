"""Reads for the hospitals and operations: straight from the tables, never through the aggregate."""

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from pydantic import BaseModel, Field
from sqlalchemy import func, select
from sqlmodel import col

from intake.adapters.tables import JourneyStepRow, SettlementRow
from intake.domain.journey import Journey
from shared.db import Database


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


def _money(amount: Any) -> str | None:
    return None if amount is None else f"{amount:.2f}"


def _status_out(s: SettlementRow, journey: list[JourneyStepRow] | None = None) -> SettlementStatusOut:
    return SettlementStatusOut(
        settlement_id=str(s.id), hospital_settlement_id=s.hospital_settlement_id, status=s.status,
        reason=s.status_reason or s.eligibility_reason, eligibility_reason=s.eligibility_reason,
        assistance=_money(s.assistance), discharge_date=s.discharge_date.isoformat(),
        received_at=s.received_at.isoformat(), updated_at=s.updated_at.isoformat(),
        journey=None if journey is None else [
            JourneyStepOut(status=j.status, reason=j.reason, at=j.at.isoformat()) for j in journey],
    )


async def settlement_status(db: Database, hospital_id: str, hospital_settlement_id: str,
                            with_journey: bool) -> SettlementStatusOut | None:
    """One of a hospital's settlements (None if it has none of that id), with its timeline if asked."""
    async with db.transaction() as session:
        settlement = (await session.execute(select(SettlementRow).where(
            col(SettlementRow.hospital_id) == hospital_id,
            col(SettlementRow.hospital_settlement_id) == hospital_settlement_id))).scalar_one_or_none()
        if settlement is None:
            return None
        journey = list((await session.execute(select(JourneyStepRow).where(
            col(JourneyStepRow.settlement_id) == settlement.id).order_by(col(JourneyStepRow.id)))).scalars()
        ) if with_journey else None
    return _status_out(settlement, journey)


async def hospital_settlements(db: Database, hospital_id: str, status: Journey | None, limit: int,
                               offset: int) -> list[SettlementStatusOut]:
    """A hospital's settlements, newest first, optionally by status."""
    query = select(SettlementRow).where(col(SettlementRow.hospital_id) == hospital_id)
    if status:
        query = query.where(col(SettlementRow.status) == status.value)
    query = query.order_by(col(SettlementRow.received_at).desc()).limit(limit).offset(offset)
    async with db.transaction() as session:
        rows = (await session.execute(query)).scalars().all()
    return [_status_out(s) for s in rows]


async def hospital_summary(db: Database, hospital_id: str) -> dict[str, int]:
    """Count of a hospital's settlements by status."""
    async with db.transaction() as session:
        rows = (await session.execute(
            select(col(SettlementRow.status), func.count()).where(col(SettlementRow.hospital_id) == hospital_id)
            .group_by(col(SettlementRow.status)))).all()
    return {status: count for status, count in rows}


async def flow(db: Database, hours: int) -> dict[str, Any]:
    """Journey steps per hour and status over the last `hours` hours, oldest hour first, with the totals."""
    since = (datetime.now(UTC) - timedelta(hours=hours - 1)).replace(minute=0, second=0, microsecond=0)
    hour = func.date_trunc("hour", col(JourneyStepRow.at))
    async with db.transaction() as session:
        rows = (await session.execute(select(hour, col(JourneyStepRow.status), func.count())
                                      .where(col(JourneyStepRow.at) >= since)
                                      .group_by(hour, col(JourneyStepRow.status)))).all()
    per_hour: dict[datetime, dict[str, int]] = {}
    totals: dict[str, int] = {}
    for at, status, count in rows:
        per_hour.setdefault(at, {})[status] = count
        totals[status] = totals.get(status, 0) + count
    return {"since": since.isoformat(), "totals": totals,
            "hours": [{"hour": at.isoformat(), "counts": per_hour[at]} for at in sorted(per_hour)]}


async def journey(db: Database, settlement_id: UUID) -> dict[str, Any] | None:
    """Where one settlement is and every step it took, by its id (any hospital's: operations see all)."""
    async with db.transaction() as session:
        settlement = await session.get(SettlementRow, settlement_id)
        if settlement is None:
            return None
        steps = (await session.execute(select(JourneyStepRow).where(col(JourneyStepRow.settlement_id) == settlement_id)
                                       .order_by(col(JourneyStepRow.at), col(JourneyStepRow.id)))).scalars().all()
    return {
        "settlement_id": str(settlement.id), "hospital_id": settlement.hospital_id,
        "hospital_settlement_id": settlement.hospital_settlement_id, "status": settlement.status,
        "reason": settlement.status_reason, "discharge_date": settlement.discharge_date.isoformat(),
        "assistance": _money(settlement.assistance), "received_at": settlement.received_at.isoformat(),
        "journey": [{"status": s.status, "reason": s.reason, "at": s.at.isoformat()} for s in steps],
    }
