"""Calculation's repositories: policies, ledgers and calculations in and out of PostgreSQL, a batch at a time.

Every method is one statement (two where it says so) for however many rows a batch has; none commits (the unit
of work does). Calculations come back as aggregates (domain.calculation) and go back with what they changed.
"""

import uuid
from collections.abc import Collection, Iterable
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import bindparam, delete, func, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import SQLModel, col

from calculation.adapters.tables import CalculationRow, LedgerRow, PolicyRow, RecoveryRow
from calculation.domain.calculation import Assessment, Calculation, CalculationStatus, LedgerKey, Ledgers
from calculation.domain.money_rule import LedgerPosition
from calculation.domain.policy import Policy
from calculation.domain.wire import figures_json
from shared.contracts.events import SettlementReceived
from shared.contracts.types import Category
from shared.db import as_arrays, in_array, in_bound_array, insert_arrays

# Calculating takes this lock shared, publishing takes it alone: a settlement is either calculated with the new
# policy in sight, or recorded as no_policy before the publication, which then finds and calculates it.
_POLICY_LOCK_KEY = 0x706F6C69


_ALL_POLICIES = select(col(PolicyRow.policy_id), col(PolicyRow.version), col(PolicyRow.document))
_PUBLISHED: dict[tuple[str, int], tuple[dict[str, Any], Policy]] = {}  # each version read: document, validated


class PolicyRepository:
    """Published policy versions; a published version never changes."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def all(self) -> list[Policy]:
        """Every published policy; the transaction holds the policy lock, shared, until it ends.

        A published version never changes, so each is validated once and kept by (id, version) with the
        document it was read from (`_PUBLISHED`): a later batch that reads the same document reuses the object
        and the rule amounts it has read (`Policy.amounts`); any other document is validated again."""
        await self.session.execute(text(f"SELECT pg_advisory_xact_lock_shared({_POLICY_LOCK_KEY})"))
        policies = []
        for policy_id, version, document in (await self.session.execute(_ALL_POLICIES)).all():
            kept = _PUBLISHED.get((policy_id, version))
            if kept is None or kept[0] != document:
                kept = _PUBLISHED[(policy_id, version)] = (document, Policy.model_validate(document))
            policies.append(kept[1])
        return policies

    async def lock(self) -> None:
        """Hold the policy lock alone until the transaction ends (publishing, announcing)."""
        await self.session.execute(text(f"SELECT pg_advisory_xact_lock({_POLICY_LOCK_KEY})"))

    async def latest_version(self, policy_id: str) -> int | None:
        return await self.session.scalar(select(func.max(PolicyRow.version))
                                         .where(col(PolicyRow.policy_id) == policy_id))

    async def add(self, policy: Policy, published_by: str) -> None:
        """Store a new version (visible to the rest of the transaction: settlements waiting for it)."""
        await self.session.execute(insert(PolicyRow).values(
            policy_id=policy.policy_id, version=policy.version, region_code=policy.region_code,
            effective_from=policy.effective_from, effective_to=policy.effective_to,
            document=policy.model_dump(mode="json"), published_by=published_by))

    async def seed(self, policies: Collection[Policy]) -> int:
        """Store the versions not stored yet (idempotent); how many were new."""
        if not policies:
            return 0
        stmt = insert(PolicyRow).values([{
            "policy_id": p.policy_id, "version": p.version, "region_code": p.region_code,
            "effective_from": p.effective_from, "effective_to": p.effective_to,
            "document": p.model_dump(mode="json"), "published_by": "seed"} for p in policies])
        return len((await self.session.execute(stmt.on_conflict_do_nothing().returning(col(PolicyRow.policy_id))))
                   .all())

    async def unannounced(self) -> list[tuple[Policy, datetime]]:
        """Versions not announced yet with when each was published, oldest first."""
        rows = (await self.session.execute(
            select(col(PolicyRow.document), col(PolicyRow.published_at)).where(col(PolicyRow.announced_at).is_(None))
            .order_by(col(PolicyRow.published_at), col(PolicyRow.version)))).all()
        return [(Policy.model_validate(document), published_at) for document, published_at in rows]

    async def mark_announced(self) -> None:
        await self.session.execute(update(PolicyRow).where(col(PolicyRow.announced_at).is_(None))
                                   .values(announced_at=datetime.now(UTC)))


# Built once, prepared once per connection: an insert() or a tuple IN (unnest ...) built per call rebuilt its column
# collections every batch (the ledger lock and save were a third of a batch's CPU).
_LOCK_LEDGERS = text("SELECT person_ref, year, deductible_used, committed FROM ledger WHERE (person_ref, year) IN ("
                     "SELECT * FROM unnest(CAST(:refs AS text[]), CAST(:years AS int[]))) FOR UPDATE")
_LEDGER_COLUMNS = ("person_ref", "year", "deductible_used", "committed")
_SAVE_LEDGERS = insert_arrays(SQLModel.metadata.tables[LedgerRow.__tablename__], _LEDGER_COLUMNS,
                              "ON CONFLICT (person_ref, year) DO UPDATE SET "
                              "deductible_used = EXCLUDED.deductible_used, committed = EXCLUDED.committed")


class LedgerRepository:
    """Per person and year, the deductible used and the assistance committed."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def lock(self, keys: Iterable[LedgerKey]) -> Ledgers:
        """The positions of these (person, year) ledgers, locked until the transaction ends."""
        keys = list(keys)
        if not keys:
            return Ledgers()
        found = await self.session.execute(_LOCK_LEDGERS, {"refs": [ref for ref, _ in keys],
                                                           "years": [year for _, year in keys]})
        return Ledgers({(ref, year): LedgerPosition(year, deductible_used, committed)
                        for ref, year, deductible_used, committed in found.all()})

    async def save(self, ledgers: Ledgers) -> None:
        """Write back the changed positions (one upsert)."""
        if ledgers.changed:
            await self.session.execute(_SAVE_LEDGERS, as_arrays([{
                "person_ref": person_ref, "year": year, "deductible_used": position.deductible_used,
                "committed": position.committed} for (person_ref, year), position in ledgers.changed.items()],
                _LEDGER_COLUMNS))


_STATE = tuple(col(c) for c in (
    CalculationRow.id, CalculationRow.settlement_id, CalculationRow.person_ref, CalculationRow.year,
    CalculationRow.category, CalculationRow.district_code, CalculationRow.subdistrict_code, CalculationRow.status,
    CalculationRow.deductible_applied, CalculationRow.assistance, CalculationRow.released))
_SAVE_STATES = text(
    "UPDATE calculation AS c SET status = v.status, released = v.released "
    "FROM unnest(CAST(:ids AS uuid[]), CAST(:statuses AS text[]), CAST(:released AS boolean[])) "
    "AS v(id, status, released) WHERE c.id = v.id")


# Arrays, not rows: the ORM's bulk INSERT leaves a None out and groups rows by the columns they have, so a batch
# mixing calculated rows (policy, figures) and waiting ones (NULLs there) was one INSERT per run of alike rows.
# `figures` is JSON text or None, which is SQL NULL (not the JSON value null).
_ADD_COLUMNS = ("id", "settlement_id", "person_ref", "year", "category", "district_code", "subdistrict_code",
                "policy_id", "policy_version", "deductible_applied", "assistance", "settlement", "figures", "status",
                "released")
_ADD = insert_arrays(SQLModel.metadata.tables[CalculationRow.__tablename__], _ADD_COLUMNS)


# The reads of every batch, built once (a statement built per call cost 0.1-0.3 ms of CPU to build and key).
_KNOWN = select(col(CalculationRow.settlement_id)).where(in_bound_array(col(CalculationRow.settlement_id), "ids"))
_LOCK_IDS = select(*_STATE).where(in_bound_array(col(CalculationRow.id), "ids")).order_by(
    col(CalculationRow.id)).with_for_update()
_LOCK_SETTLEMENT = select(*_STATE).where(col(CalculationRow.settlement_id) == bindparam("settlement_id")).order_by(
    col(CalculationRow.id)).with_for_update()
_MAY_HAVE_A_RECOVERY = (CalculationStatus.PAID, CalculationStatus.REVERSED)
_RECOVERED = select(col(RecoveryRow.calculation_id)).where(in_bound_array(col(RecoveryRow.calculation_id), "ids"))


class CalculationRepository:
    """Calculations, with the recovery each may have."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def known(self, settlement_ids: Collection[uuid.UUID]) -> set[uuid.UUID]:
        """Which of these settlements have a calculation already."""
        if not settlement_ids:
            return set()
        return set((await self.session.execute(_KNOWN, {"ids": list(settlement_ids)})).scalars())

    async def add(self, calculations: Collection[Calculation]) -> None:
        """Store new calculations (one multi-row INSERT)."""
        if calculations:
            await self.session.execute(_ADD, as_arrays([_row(c) for c in calculations], _ADD_COLUMNS))

    async def replace(self, calculations: Collection[Calculation]) -> None:
        """Store calculations made again from waiting ones, under their ids (a DELETE and an INSERT)."""
        if calculations:
            await self.session.execute(delete(CalculationRow).where(
                in_array(col(CalculationRow.id), [c.calculation_id for c in calculations])))
            await self.add(calculations)

    async def waiting(self, region_code: str) -> list[Calculation]:
        """The region's calculations waiting for a policy, with their settlement, locked, oldest first."""
        rows = (await self.session.execute(
            select(*_STATE, col(CalculationRow.settlement))
            .where(col(CalculationRow.status) == CalculationStatus.NO_POLICY,
                   col(CalculationRow.district_code) == region_code)
            .order_by(col(CalculationRow.created_at)).with_for_update())).all()
        calculations = []
        for row in rows:
            calc = _aggregate(row)
            calc.assessment = Assessment(settlement=SettlementReceived.model_validate(row.settlement))
            calculations.append(calc)
        return calculations

    async def locked(self, ids: Collection[uuid.UUID] = (), *, settlement_id: uuid.UUID | None = None
                     ) -> list[Calculation]:
        """The calculations of these ids (or of one settlement), locked, and whether each has a recovery (a second
        statement, after the lock, so a recovery committed meanwhile is seen).

        Only a paid or reversed calculation can have a recovery (one is opened by reversing a paid calculation, or
        by a payment landing on a reversed one, and a reversed calculation never moves again), and only for those
        does the aggregate ask (`reverse` of a paid one, `settle` of a reversed one): the recoveries are read when
        the batch holds one, so the approvals and payments of the pipeline cost one read, not two."""
        if settlement_id is not None:
            rows = await self.session.execute(_LOCK_SETTLEMENT, {"settlement_id": settlement_id})
        elif ids:
            rows = await self.session.execute(_LOCK_IDS, {"ids": list(ids)})
        else:
            return []
        calculations = [_aggregate(r) for r in rows.all()]
        asked = [c.calculation_id for c in calculations if c.status in _MAY_HAVE_A_RECOVERY]
        if asked:
            recovered = set((await self.session.execute(_RECOVERED, {"ids": asked})).scalars())
            for calc in calculations:
                calc.recovered = calc.calculation_id in recovered
        return calculations

    async def save(self, calculations: Collection[Calculation]) -> None:
        """Write back the state of loaded calculations and the recoveries they opened (a statement each)."""
        if not calculations:
            return
        await self.session.execute(_SAVE_STATES, {
            "ids": [c.calculation_id for c in calculations], "statuses": [c.status.value for c in calculations],
            "released": [c.released for c in calculations]})
        opened = [c for c in calculations if c.recovery is not None]
        if opened:
            await self.session.execute(insert(RecoveryRow).on_conflict_do_nothing(), [{
                "id": c.recovery.recovery_id, "calculation_id": c.calculation_id, "settlement_id": c.settlement_id,
                "person_ref": c.person_ref, "district_code": c.district_code, "amount": c.recovery.amount,
                "created_at": c.recovery.opened_at} for c in opened if c.recovery is not None])
            for calc in opened:
                calc.recovery = None


def _aggregate(r: Any) -> Calculation:
    """A calculation from a row of `_STATE`'s columns (a Row, typed by position only)."""
    return Calculation(
        calculation_id=r.id, settlement_id=r.settlement_id, person_ref=r.person_ref, year=r.year,
        category=Category(r.category) if r.category else None, district_code=r.district_code,
        subdistrict_code=r.subdistrict_code, status=CalculationStatus(r.status),
        deductible_applied=r.deductible_applied, assistance=r.assistance, released=r.released)


def _row(calc: Calculation) -> dict[str, object]:
    assessment = calc.assessment
    if assessment is None:
        raise ValueError("a calculation is stored with the settlement it was made from")
    return {
        "id": calc.calculation_id, "settlement_id": calc.settlement_id, "person_ref": calc.person_ref,
        "year": calc.year, "category": calc.category.value if calc.category else None,
        "district_code": calc.district_code, "subdistrict_code": calc.subdistrict_code,
        "policy_id": assessment.policy_id, "policy_version": assessment.policy_version,
        "deductible_applied": calc.deductible_applied, "assistance": calc.assistance,
        # JSON text written by orjson from the JSON forms (`domain.wire`, or the settlement as received): the same
        # text pydantic's dump writes, without its serializer (tests/unit/test_wire.py).
        "settlement": (assessment.settlement.model_dump_json() if assessment.settlement_json is None
                       else orjson.dumps(assessment.settlement_json).decode()),
        "figures": orjson.dumps(figures_json(assessment.figures)).decode() if assessment.figures else None,
        "status": calc.status.value, "released": calc.released,
    }
