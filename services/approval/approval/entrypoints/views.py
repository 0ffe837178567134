"""Reads: the case lists, one case with its trail, the reviewer's view, personal-data reads and queue depth.

Queries straight on approval's tables (no aggregate is loaded to read), each in one transaction, confined to the
reader's area by the one area rule (`principal.area`).
"""

from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from approval.adapters.flags import flag_conditions
from approval.adapters.tables import AuditRecord, CaseRecord
from approval.dependencies import ReviewContext
from approval.domain.case import Case, CaseState
from approval.domain.review import Flag, FlagRules
from approval.entrypoints.case_view import case_review
from approval.service_layer.cases import case_not_found
from shared.db import Database
from shared.security.area import Area
from shared.security.read_audit import READ_AUDIT
from shared.security.staff_auth import Principal, Role

SORTS: dict[str, Any] = {"created_at": CaseRecord.created_at, "amount": CaseRecord.amount,
                         "discharge_date": CaseRecord.discharge_date}
OPEN_STATES = [CaseState.AWAITING_SUBDISTRICT.value, CaseState.AWAITING_DISTRICT.value]
OWN_QUEUE = {Role.clerk: CaseState.AWAITING_SUBDISTRICT, Role.district_reviewer: CaseState.AWAITING_DISTRICT}


def _iso(value: date | datetime | None) -> str | None:
    return value.isoformat() if value else None


def case_out(c: CaseRecord | Case, audit: list[AuditRecord] | None = None, flags: list[str] | None = None
             ) -> dict[str, Any]:
    """A case as every route answers it (with its calculation and trail when `audit` is given)."""
    out: dict[str, Any] = {
        "case_id": str(c.id), "settlement_id": str(c.settlement_id), "calculation_id": str(c.calculation_id),
        "person_ref": c.person_ref, "hospital_id": c.hospital_id, "district_code": c.district_code,
        "subdistrict_code": c.subdistrict_code, "category": c.category,
        "discharge_date": c.discharge_date.isoformat(), "amount": f"{c.amount:.2f}", "state": str(c.state),
        "payment_status": c.payment_status,
        "recovery": None if c.recovery_id is None else {
            "recovery_id": str(c.recovery_id), "amount": f"{c.recovery_amount:.2f}",
            "opened_at": _iso(c.recovery_opened_at)},
        "created_at": _iso(c.created_at),
        "updated_at": _iso(c.updated_at),
    }
    if flags is not None:
        out["flags"] = flags
    if audit is not None:
        calc = c.calculation  # the AssistanceCalculated payload the case was opened from
        out["calculation"] = {k: calc[k] for k in ("year", "policy_id", "policy_version", "figures")}
        out["audit"] = [{"actor": a.actor, "role": a.role, "action": a.action, "from_state": a.from_state,
                         "to_state": a.to_state, "reason": a.reason, "comment": a.comment,
                         "at": a.at.isoformat()} for a in audit]
    return out


@dataclass(frozen=True)
class CaseQuery:
    """A case list's filters (every one optional), its order and its page."""

    state: CaseState | None = None
    subdistrict_code: str | None = None
    hospital_id: str | None = None
    discharged_from: date | None = None
    discharged_to: date | None = None
    amount_min: Decimal | None = None
    amount_max: Decimal | None = None
    flags: list[Flag] = field(default_factory=list)
    sort: str = "created_at"
    limit: int = 50
    offset: int = 0


async def list_cases(db: Database, viewer: Principal, query: CaseQuery, rules: FlagRules) -> dict[str, Any]:
    """Cases in the viewer's area (by default a clerk's or reviewer's own queue), each with its flags."""
    state = query.state or OWN_QUEUE.get(viewer.role)
    conditions = viewer.area.where(CaseRecord.district_code, CaseRecord.subdistrict_code)
    for attribute, value in ((CaseRecord.state, state.value if state else None),
                             (CaseRecord.subdistrict_code, query.subdistrict_code),
                             (CaseRecord.hospital_id, query.hospital_id)):
        if value:
            conditions.append(col(attribute) == value)
    if query.discharged_from:
        conditions.append(col(CaseRecord.discharge_date) >= query.discharged_from)
    if query.discharged_to:
        conditions.append(col(CaseRecord.discharge_date) <= query.discharged_to)
    if query.amount_min is not None:
        conditions.append(col(CaseRecord.amount) >= query.amount_min)
    if query.amount_max is not None:
        conditions.append(col(CaseRecord.amount) <= query.amount_max)
    flags = flag_conditions(rules, datetime.now(UTC))
    conditions += [flags[f] for f in query.flags]
    column, case_id = col(SORTS[query.sort.lstrip("-")]), col(CaseRecord.id)
    order = (column.desc(), case_id.desc()) if query.sort.startswith("-") else (column, case_id)
    async with db.transaction() as session:
        total, oldest = (await session.execute(select(func.count(), func.min(CaseRecord.created_at))
                                               .select_from(CaseRecord).where(*conditions))).one()
        rows = (await session.execute(select(CaseRecord, *[c.label(f.value) for f, c in flags.items()])
                                      .where(*conditions).order_by(*order).limit(query.limit)
                                      .offset(query.offset))).all()
        items = [case_out(row[0], flags=[f.value for f in flags if getattr(row, f.value)]) for row in rows]
    return {"total": total, "limit": query.limit, "offset": query.offset, "oldest_created_at": _iso(oldest),
            "items": items}


async def _case_in_area(session: AsyncSession, case_id: UUID, area: Area) -> CaseRecord:
    case = await session.get(CaseRecord, case_id)
    if case is None or not area.contains(case.district_code, case.subdistrict_code):
        raise case_not_found()
    return case


async def _audit(session: AsyncSession, case_id: UUID) -> list[AuditRecord]:
    return list((await session.execute(select(AuditRecord).where(col(AuditRecord.case_id) == case_id)
                                       .order_by(col(AuditRecord.id)))).scalars())


async def case_detail(db: Database, case_id: UUID, viewer: Principal) -> dict[str, Any]:
    """One case with its calculation (every figure) and its audit trail."""
    async with db.transaction() as session:
        case = await _case_in_area(session, case_id, viewer.area)
        return case_out(case, await _audit(session, case_id))


async def review(db: Database, case_id: UUID, reviewer: Principal, context: ReviewContext) -> dict[str, Any]:
    """The case as a reviewer needs it; a view that decrypts the person is recorded in the same transaction."""
    async with db.transaction() as session:
        case = await _case_in_area(session, case_id, reviewer.area)
        audit = await _audit(session, case_id)
        return {"case": case_out(case, audit), **await case_review(session, case, reviewer, context)}


async def personal_data_reads(db: Database, case_id: UUID, overseer: Principal) -> list[dict[str, Any]]:
    """Who read this case's person's name and national ID, when and why, oldest first."""
    async with db.transaction() as session:
        case = await _case_in_area(session, case_id, overseer.area)
        rows = (await session.execute(select(READ_AUDIT).where(READ_AUDIT.c.person_ref == case.person_ref)
                                      .order_by(READ_AUDIT.c.id))).all()
    return [{"actor": r.actor, "role": r.role, "purpose": r.purpose, "fields": r.fields.split(","),
             "at": r.at.isoformat()} for r in rows]


async def queue_depth(db: Database, area: Area) -> list[dict[str, Any]]:
    """Open cases per sub-district and state in `area`, with the oldest one's age."""
    query = (select(col(CaseRecord.subdistrict_code), col(CaseRecord.state), func.count(),
                    func.min(CaseRecord.created_at))
             .where(col(CaseRecord.state).in_(OPEN_STATES),
                    *area.where(CaseRecord.district_code, CaseRecord.subdistrict_code))
             .group_by(col(CaseRecord.subdistrict_code), col(CaseRecord.state)))
    async with db.transaction() as session:
        rows = (await session.execute(query)).all()
    now = datetime.now(UTC)
    return [{"subdistrict_code": s, "state": st, "count": n, "oldest_created_at": oldest.isoformat(),
             "oldest_age_s": round((now - oldest).total_seconds(), 1)} for s, st, n, oldest in rows]
