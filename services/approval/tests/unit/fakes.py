"""In-memory stand-ins for approval's repositories and unit of work (cosmicpython's FakeUnitOfWork).

They keep what was *stored*, apart from the aggregates handed out: a handler that forgets to save finds its
change missing, as it would in the database. tests/integration/test_repositories.py holds them to the same
contract as the real repositories.
"""

import dataclasses
from collections.abc import AsyncIterator, Collection, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any
from uuid import UUID

from approval.config import ApprovalSettings
from approval.domain.case import Action, AuditEntry, Case
from approval.service_layer.unit_of_work import ApprovalUnitOfWork

from shared.messaging.outbox import Outgoing
from shared.unit_of_work import UnitOfWork


def _stored(case: Case) -> Case:
    return dataclasses.replace(case, audit=[], events=[], approvals=(), changed=False)


class FakeCases:
    def __init__(self) -> None:
        self.rows: dict[UUID, Case] = {}
        self.trail: dict[UUID, list[AuditEntry]] = {}

    def _out(self, case_id: UUID) -> Case:
        approvals = tuple((e.actor, e.role) for e in self.trail[case_id] if e.action == Action.APPROVE)
        return dataclasses.replace(self.rows[case_id], approvals=approvals)

    async def add(self, cases: Sequence[Case]) -> list[Case]:
        taken = {c.calculation_id for c in self.rows.values()}
        new = []
        for case in cases:
            if case.calculation_id not in taken:
                taken.add(case.calculation_id)
                self.rows[case.id], self.trail[case.id] = _stored(case), list(case.audit)
                case.audit.clear()
                new.append(case)
        return new

    async def get(self, case_id: UUID) -> Case | None:
        return self._out(case_id) if case_id in self.rows else None

    async def by_calculation(self, calculation_ids: Collection[UUID]) -> dict[UUID, Case]:
        return {c.calculation_id: self._out(c.id) for c in self.rows.values() if c.calculation_id in calculation_ids}

    async def save(self, cases: Iterable[Case]) -> None:
        for case in cases:
            if case.changed:
                kept = self.rows[case.id]
                self.rows[case.id] = dataclasses.replace(
                    _stored(case), payment_status=kept.payment_status, payment_failures=kept.payment_failures)
                self.trail[case.id] += case.audit
                case.audit.clear()
                case.changed = False

    async def record_payments(self, statuses: Mapping[UUID, str]) -> None:
        for case_id, status in statuses.items():
            if case_id in self.rows:
                kept = self.rows[case_id]
                self.rows[case_id] = dataclasses.replace(
                    kept, payment_status=status, payment_failures=kept.payment_failures + (status == "failed"))


class FakePeople:
    def __init__(self) -> None:
        self.rows: dict[str, dict[str, Any]] = {}

    async def locked(self, person_refs: Collection[str]) -> dict[str, Any]:
        return {ref: _Row(self.rows[ref]) for ref in person_refs if ref in self.rows}

    async def upsert(self, rows: Sequence[Mapping[str, Any]]) -> None:
        for row in rows:
            self.rows[row["person_ref"]] = dict(row)


class _Row:
    """A stored row read back as attributes, as PersonView is."""

    def __init__(self, values: Mapping[str, Any]) -> None:
        self.__dict__.update(values)


class FakeCalculations:
    def __init__(self) -> None:
        self.rows: dict[UUID, dict[str, Any]] = {}

    async def add(self, rows: Sequence[Mapping[str, Any]]) -> None:
        for row in rows:
            self.rows.setdefault(row["calculation_id"], {**row, "released": False})

    async def release(self, calculation_ids: Collection[UUID]) -> None:
        for calculation_id in calculation_ids:
            if calculation_id in self.rows:
                self.rows[calculation_id]["released"] = True

    @property
    def released(self) -> set[UUID]:
        return {i for i, row in self.rows.items() if row["released"]}


class FakeDatabase:
    """What the fake units of work share: the stored rows and the events committed (published)."""

    def __init__(self, settings: ApprovalSettings) -> None:
        self.settings = settings
        self.cases, self.people, self.calculations = FakeCases(), FakePeople(), FakeCalculations()
        self.published: list[Outgoing] = []
        self.commits = 0

    def unit_of_work(self) -> "FakeUnitOfWork":
        return FakeUnitOfWork(self)

    @asynccontextmanager
    async def start(self) -> AsyncIterator["FakeUnitOfWork"]:
        """A unit of work whose events are published only when the block ends without an error."""
        uow = FakeUnitOfWork(self)
        yield uow
        self.commit(uow)

    def commit(self, uow: "FakeUnitOfWork") -> None:
        self.published += uow.pending
        self.commits += 1


class FakeUnitOfWork(ApprovalUnitOfWork):
    def __init__(self, db: FakeDatabase) -> None:  # no session: nothing here reaches a database
        UnitOfWork.__init__(self, None, db.settings)  # type: ignore[arg-type]
        self.cases, self.people, self.calculations = db.cases, db.people, db.calculations  # type: ignore[assignment]
