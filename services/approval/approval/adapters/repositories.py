"""Approval's repositories: cases with their audit trail, and the case view's read models, in bulk SQL.

One statement per table per batch: a batch of cases is inserted, updated and audited with one statement each,
however many cases it holds. Nothing here commits; the unit of work does.

Bulk inserts bind one array per column (`shared.db.insert_arrays`, built at import): the ORM's bulk INSERT leaves
a None out of a row and groups rows by the columns they have, so a batch mixing, say, an audit entry with a
from_state and one without became one statement per run of alike rows (2 per case under the bench's
auto-approval), and a RETURNING executemany is a multi-row VALUES, a new statement to prepare per batch size.
"""

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import fields
from typing import Any
from uuid import UUID

import orjson
from sqlalchemy import select, text, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import SQLModel, col

from approval.adapters.tables import AuditRecord, CaseRecord, PersonCalculation, PersonView
from approval.domain.case import Action, Case, CaseState
from shared.db import as_arrays, in_array, insert_arrays, update_arrays
from shared.security.roles import Role

_NEW = ("created_at", "updated_at", "payment_status", "payment_failures")  # the database's defaults
_MOVED = ("state", "updated_at", "recovery_id", "recovery_amount", "recovery_opened_at")  # what a move changes
_COLUMNS = [f.name for f in fields(Case) if f.name in CaseRecord.model_fields]  # the rest is the aggregate's own
_CASES, _AUDIT, _PEOPLE, _CALCULATIONS = (SQLModel.metadata.tables[t.__tablename__] for t in (
    CaseRecord, AuditRecord, PersonView, PersonCalculation))  # the Core tables of the bulk writes
_ADD_COLUMNS = [c for c in CaseRecord.model_fields if c not in _NEW]
_ADD_CASES = insert_arrays(_CASES, _ADD_COLUMNS, "ON CONFLICT (calculation_id) DO NOTHING RETURNING id")
_AUDIT_COLUMNS = ("case_id", "actor", "role", "action", "from_state", "to_state", "reason", "comment", "at")
_ADD_AUDIT = insert_arrays(_AUDIT, _AUDIT_COLUMNS)  # in the cases' and their entries' order: the ids follow it
# New cases and their opening entries in one statement: the entries of the cases the INSERT took (a calculation
# delivered again opens nothing), in the same order; which cases were opened comes back from the entries (every
# case `Case.open` makes has its opening entry). One round trip and one statement a batch fewer than two INSERTs.
_OPEN_CASES = text(f"WITH opened AS ({_ADD_CASES.text}) " + _ADD_AUDIT.text.replace(
    " ORDER BY n", " WHERE v.case_id IN (SELECT id FROM opened) ORDER BY n") + " RETURNING case_id")
assert _OPEN_CASES.text.count("WHERE v.case_id IN") == 1
_CALCULATION_COLUMNS = ("calculation_id", "settlement_id", "person_ref", "year", "hospital_id",
                        "hospital_settlement_id", "discharge_date", "deductible_applied", "assistance", "deductible",
                        "cap")
_SAVE_MOVES = update_arrays(_CASES, "id", _MOVED)
_SAVE_PAYMENTS = update_arrays(_CASES, "id", ("payment_status",))
_ADD_CALCULATIONS = insert_arrays(_CALCULATIONS, _CALCULATION_COLUMNS, "ON CONFLICT (calculation_id) DO NOTHING")


def _case(record: CaseRecord, approvals: tuple[tuple[str, Role], ...] = ()) -> Case:
    values = {name: getattr(record, name) for name in _COLUMNS}
    return Case(**{**values, "state": CaseState(record.state)}, approvals=approvals)


def _row(case: Case, names: Iterable[str]) -> dict[str, Any]:
    values = {name: getattr(case, name) for name in names}
    return {**values, "state": case.state.value} if "state" in values else values


class CaseRepository:
    """Cases and their audit trail (appended only: the database refuses UPDATE and DELETE on it)."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, cases: Sequence[Case]) -> list[Case]:
        """Insert new cases with their audit entries; the ones inserted (a calculation opens one case, ever)."""
        if not cases:
            return []
        rows = [{**_row(c, _ADD_COLUMNS), "calculation": orjson.dumps(c.calculation).decode()} for c in cases]
        if all(c.audit for c in cases):  # as `Case.open` makes them: the cases and their entries in one statement
            entries = _audit_rows(cases)
            opened = set((await self.session.execute(_OPEN_CASES, {
                **as_arrays(rows, _ADD_COLUMNS), **as_arrays(entries, _AUDIT_COLUMNS)})).scalars())
            new = [c for c in cases if c.id in opened]
            for case in new:
                case.audit.clear()
            return new
        opened = set((await self.session.execute(_ADD_CASES, as_arrays(rows, _ADD_COLUMNS))).scalars())
        new = [c for c in cases if c.id in opened]
        await self._append_audit(new)
        return new

    async def get(self, case_id: UUID) -> Case | None:
        """The case locked for an action, with who approved it so far (four eyes)."""
        record = (await self.session.execute(select(CaseRecord).where(col(CaseRecord.id) == case_id)
                                             .with_for_update())).scalar_one_or_none()
        if record is None:
            return None
        approvals = (await self.session.execute(
            select(col(AuditRecord.actor), col(AuditRecord.role)).where(col(AuditRecord.case_id) == case_id,
                                                              col(AuditRecord.action) == Action.APPROVE.value)
            .order_by(col(AuditRecord.id)))).all()
        return _case(record, tuple((actor, Role(role)) for actor, role in approvals))

    async def by_calculation(self, calculation_ids: Collection[UUID]) -> dict[UUID, Case]:
        """The cases of these calculations, locked, by calculation id (one query for the batch)."""
        if not calculation_ids:
            return {}
        records = (await self.session.execute(
            select(CaseRecord).where(in_array(col(CaseRecord.calculation_id), calculation_ids))
            .order_by(col(CaseRecord.id)).with_for_update())).scalars()
        return {r.calculation_id: _case(r) for r in records}

    async def save(self, cases: Iterable[Case]) -> None:
        """Store what the cases' methods changed: one UPDATE and one audit INSERT for all of them."""
        changed = [c for c in cases if c.changed]
        if not changed:
            return
        await self.session.execute(_SAVE_MOVES, as_arrays([{"id": c.id, **_row(c, _MOVED)} for c in changed],
                                                           ("id", *_MOVED)))
        await self._append_audit(changed)
        for case in changed:
            case.changed = False

    async def record_payments(self, statuses: Mapping[UUID, str]) -> None:
        """The bank's final word on each case's payment; a failure is counted (the reviewer's flag)."""
        if not statuses:
            return
        await self.session.execute(_SAVE_PAYMENTS, {"id": list(statuses), "payment_status": list(statuses.values())})
        failed = [i for i, s in statuses.items() if s == "failed"]
        if failed:
            await self.session.execute(update(CaseRecord).where(in_array(col(CaseRecord.id), failed))
                                       .values(payment_failures=CaseRecord.payment_failures + 1))

    async def _append_audit(self, cases: Iterable[Case]) -> None:
        cases = list(cases)
        rows = _audit_rows(cases)
        for case in cases:
            case.audit.clear()
        if rows:
            await self.session.execute(_ADD_AUDIT, as_arrays(rows, _AUDIT_COLUMNS))


def _audit_rows(cases: Iterable[Case]) -> list[dict[str, Any]]:
    return [{"case_id": c.id, "actor": e.actor, "role": e.role.value, "action": e.action,
             "from_state": e.from_state.value if e.from_state else None, "to_state": e.to_state.value,
             "reason": e.reason, "comment": e.comment, "at": e.at} for c in cases for e in c.audit]


_PEOPLE_COLUMNS = ("person_ref", "identity_enc", "district_code", "subdistrict_code", "periods", "consents",
                   "account_version", "account_changed_at", "recorded_at")
_UPSERT_PEOPLE = insert_arrays(_PEOPLE, _PEOPLE_COLUMNS, "ON CONFLICT (person_ref) DO UPDATE SET " + ", ".join(
    f"{c} = EXCLUDED.{c}" for c in _PEOPLE_COLUMNS[1:]))


class PersonRepository:
    """The registry's latest entry per person (the case view's who)."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def locked(self, person_refs: Collection[str]) -> dict[str, PersonView]:
        """The entries kept for these persons, locked until the batch commits."""
        if not person_refs:
            return {}
        return {p.person_ref: p for p in (await self.session.execute(
            select(PersonView).where(in_array(col(PersonView.person_ref), person_refs)).with_for_update())).scalars()}

    async def upsert(self, rows: Sequence[dict[str, Any]]) -> None:
        """Write each person's entry: one INSERT ... ON CONFLICT DO UPDATE over arrays for the batch, whatever its
        size, the periods and consents as JSON written by orjson (the driver's json.dumps cost 5-10 us a value)."""
        if not rows:
            return
        arrays = as_arrays(rows, _PEOPLE_COLUMNS)
        for column in ("periods", "consents"):
            arrays[column] = [orjson.dumps(value).decode() for value in arrays[column]]
        await self.session.execute(_UPSERT_PEOPLE, arrays)


class CalculationRepository:
    """Every calculation of a person (those with nothing to pay too): what each took of the year's ledger."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, rows: Sequence[Mapping[str, Any]]) -> None:
        """Keep the calculations (one INSERT for the batch; one seen before is kept as it was)."""
        if rows:
            await self.session.execute(_ADD_CALCULATIONS, as_arrays(rows, _CALCULATION_COLUMNS))

    async def release(self, calculation_ids: Collection[UUID]) -> None:
        """A rejected case, or a settlement reversed before payment, gives its share of the year back."""
        if calculation_ids:
            await self.session.execute(update(PersonCalculation).where(
                in_array(col(PersonCalculation.calculation_id), calculation_ids)).values(released=True))
