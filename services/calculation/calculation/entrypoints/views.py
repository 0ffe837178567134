"""Reads for the API: published policies, one calculation, open recoveries, a person's ledgers.

Queries only (no aggregate, no lock); each opens its own short transaction and confines what it returns to the
caller's area (shared.security.area): outside it a thing does not exist."""

import uuid
from typing import Any

from sqlalchemy import select
from sqlmodel import col

from calculation.adapters.tables import CalculationRow, LedgerRow, PolicyRow, RecoveryRow
from shared.db import Database
from shared.security.area import Area


async def policies(db: Database) -> list[dict[str, Any]]:
    """Every published policy version: its document, who published it and when."""
    async with db.transaction() as session:
        rows = (await session.execute(select(PolicyRow).order_by(col(PolicyRow.policy_id),
                                                                 col(PolicyRow.version)))).scalars()
        return [{**r.document, "published_by": r.published_by, "published_at": r.published_at.isoformat()}
                for r in rows]


async def calculation(db: Database, area: Area, settlement_id: uuid.UUID) -> CalculationRow | None:
    """The settlement's calculation; None when there is none inside the area (the same answer either way)."""
    async with db.transaction() as session:
        calc = (await session.execute(select(CalculationRow).where(
            col(CalculationRow.settlement_id) == settlement_id))).scalar_one_or_none()
    return calc if calc is not None and area.contains(calc.district_code, calc.subdistrict_code) else None


async def recoveries(db: Database, status: str, area: Area, limit: int, offset: int) -> list[dict[str, Any]]:
    """Recoveries of a status inside the area, oldest first."""
    query = (select(RecoveryRow).where(col(RecoveryRow.status) == status, *area.where(RecoveryRow.district_code))
             .order_by(col(RecoveryRow.created_at)).limit(limit).offset(offset))
    async with db.transaction() as session:
        return [{"recovery_id": str(r.id), "settlement_id": str(r.settlement_id), "person_ref": r.person_ref,
                 "district_code": r.district_code, "amount": f"{r.amount:.2f}", "status": r.status,
                 "created_at": r.created_at.isoformat()} for r in (await session.execute(query)).scalars()]


async def ledgers(db: Database, area: Area, person_ref: str) -> list[dict[str, Any]] | None:
    """A person's deductible used and assistance committed, per year. An area confines it to persons whose latest
    calculation is inside it; for anyone else, None (as for a pseudonym nobody has)."""
    async with db.transaction() as session:
        if not area.everywhere:
            latest = (await session.execute(
                select(col(CalculationRow.district_code), col(CalculationRow.subdistrict_code))
                .where(col(CalculationRow.person_ref) == person_ref)
                .order_by(col(CalculationRow.created_at).desc()).limit(1))).first()
            if latest is None or not area.contains(latest[0], latest[1]):
                return None
        rows = (await session.execute(select(LedgerRow).where(col(LedgerRow.person_ref) == person_ref)
                                      .order_by(col(LedgerRow.year)))).scalars()
        return [{"year": r.year, "deductible_used": f"{r.deductible_used:.2f}", "committed": f"{r.committed:.2f}"}
                for r in rows]
