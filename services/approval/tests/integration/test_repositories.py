"""One contract per repository, held by the real one on PostgreSQL and by the in-memory fake the handler tests
use: what is stored comes back, a calculation opens one case, a move is saved with its audit, nothing else."""

import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest
from approval.adapters.tables import AuditRecord, PersonCalculation
from approval.bootstrap import MIGRATIONS, case_service
from approval.config import ApprovalSettings
from approval.dependencies import dependencies
from approval.domain.case import Action, ApprovalRules, Case, CaseState
from approval.service_layer.unit_of_work import ApprovalUnitOfWork
from sqlalchemy import select

from shared.contracts import events as ev
from shared.contracts.topics import TRANSFER_SETTLED
from shared.db import Database
from shared.messaging.consumer import Event
from shared.security.roles import Role
from shared.testing import migrated_database, statements_sent
from shared.unit_of_work import unit_of_work

from ..unit.fakes import FakeDatabase
from ..unit.test_case_handlers import calculated, event

pytestmark = pytest.mark.integration
SETTINGS = ApprovalSettings(database_name="test_approval_repositories")
AT = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)


@dataclass
class Store:
    """A repository implementation under the contract, with a way to read what it stored."""

    start: Callable[[], AbstractAsyncContextManager[ApprovalUnitOfWork]]
    trail: Callable[[uuid.UUID], Any]
    released: Callable[[], Any]


@pytest.fixture(scope="module")
async def database() -> AsyncIterator[Database]:
    async with migrated_database(SETTINGS, MIGRATIONS) as db:
        yield db


@pytest.fixture(params=["postgres", "fake"])
async def store(request: pytest.FixtureRequest, database: Database) -> Store:
    if request.param == "fake":
        fake = FakeDatabase(SETTINGS)

        async def fake_trail(case_id: uuid.UUID) -> list[tuple[Any, ...]]:
            return [(e.actor, e.role.value, str(e.action), e.from_state and e.from_state.value, e.to_state.value,
                     e.reason, e.comment) for e in fake.cases.trail.get(case_id, [])]

        async def fake_released() -> set[uuid.UUID]:
            return fake.calculations.released

        return Store(fake.start, fake_trail, fake_released)

    async def trail(case_id: uuid.UUID) -> list[tuple[Any, ...]]:
        async with database.transaction() as session:
            rows = (await session.execute(select(AuditRecord).where(AuditRecord.case_id == case_id)
                                          .order_by(AuditRecord.id))).scalars()  # type: ignore[arg-type]
            return [(a.actor, a.role, a.action, a.from_state, a.to_state, a.reason, a.comment) for a in rows]

    async def released() -> set[uuid.UUID]:
        async with database.transaction() as session:
            return set((await session.execute(select(PersonCalculation.calculation_id)
                                              .where(PersonCalculation.released))).scalars())  # type: ignore[arg-type]

    return Store(lambda: unit_of_work(database, ApprovalUnitOfWork), trail, released)


def new_case(amount: str = "250.00", **over: Any) -> Case:
    facts: dict[str, Any] = dict(
        id=uuid.uuid4(), calculation_id=uuid.uuid4(), settlement_id=uuid.uuid4(), person_ref=uuid.uuid4().hex * 2,
        hospital_id="H001", district_code="310110", subdistrict_code="310110001", category="subsistence",
        discharge_date=date(2026, 3, 1), amount=Decimal(amount), calculation={"year": 2026, "figures": {}},
        traceparent=None)
    return Case.open(ApprovalRules(), AT, **{**facts, **over})


async def test_case_repository(store: Store) -> None:
    first, twin, other = new_case(), new_case(), new_case("80.00")
    twin.calculation_id = first.calculation_id  # the same calculation delivered again
    async with store.start() as uow:
        assert [c.id for c in await uow.cases.add([first, twin, other])] == [first.id, other.id]
    async with store.start() as uow:
        assert await uow.cases.add([new_case(calculation_id=other.calculation_id)]) == []
        assert await uow.cases.get(twin.id) is None and await uow.cases.get(uuid.uuid4()) is None
        case = await uow.cases.get(first.id)
        assert case is not None
        assert (case.state, case.amount, case.calculation_id, case.person_ref, case.discharge_date, case.approvals,
                case.calculation, case.payment_status, case.payment_failures) == (
            CaseState.AWAITING_SUBDISTRICT, Decimal("250.00"), first.calculation_id, first.person_ref,
            date(2026, 3, 1), (), {"year": 2026, "figures": {}}, None, 0)
        case.apply(Action.APPROVE, "clerk-wang", Role.clerk, AT, comment="checked")
        untouched = await uow.cases.get(other.id)
        assert untouched is not None
        await uow.cases.save([case, untouched])
    async with store.start() as uow:
        found = await uow.cases.by_calculation([first.calculation_id, other.calculation_id, uuid.uuid4()])
        assert {k: (c.id, c.state) for k, c in found.items()} == {
            first.calculation_id: (first.id, CaseState.AWAITING_DISTRICT),
            other.calculation_id: (other.id, CaseState.AWAITING_SUBDISTRICT)}
        again = await uow.cases.get(first.id)
        assert again is not None and again.approvals == (("clerk-wang", Role.clerk),)
        assert again.updated_at == AT
        await uow.cases.record_payments({first.id: "failed", other.id: "settled"})
    async with store.start() as uow:
        await uow.cases.record_payments({first.id: "settled"})
    async with store.start() as uow:
        paid, settled = await uow.cases.get(first.id), await uow.cases.get(other.id)
        assert paid is not None and settled is not None
        assert (paid.payment_status, paid.payment_failures, settled.payment_status, settled.payment_failures) == (
            "settled", 1, "settled", 0)
    assert await store.trail(first.id) == [
        ("system", "system", "open", None, "awaiting_subdistrict", None, None),
        ("clerk-wang", "clerk", "approve", "awaiting_subdistrict", "awaiting_district", None, "checked")]
    assert await store.trail(other.id) == [("system", "system", "open", None, "awaiting_subdistrict", None, None)]


async def test_cases_opened_together_keep_their_entries_in_order_and_one_without_any_is_still_stored(
        store: Store) -> None:
    auto = [Case.open(ApprovalRules(auto_approve=True), AT, **{**{f: getattr(new_case(), f) for f in (
        "id", "calculation_id", "settlement_id", "person_ref", "hospital_id", "district_code", "subdistrict_code",
        "category", "discharge_date", "amount", "calculation")}, "traceparent": None}) for _ in range(3)]
    bare = new_case()
    bare.audit.clear()
    async with store.start() as uow:
        assert [c.id for c in await uow.cases.add(auto)] == [c.id for c in auto]
        assert all(not c.audit for c in auto)
        assert [c.id for c in await uow.cases.add([bare])] == [bare.id]
    for case in auto:
        assert [t[2:5] for t in await store.trail(case.id)] == [
            ("open", None, "awaiting_subdistrict"), ("approve", "awaiting_subdistrict", "approved")]
    assert await store.trail(bare.id) == []


async def test_a_recovery_is_saved_with_the_case(store: Store) -> None:
    case = new_case()
    async with store.start() as uow:
        await uow.cases.add([case])
    recovery = uuid.uuid4()
    async with store.start() as uow:
        loaded = (await uow.cases.by_calculation([case.calculation_id]))[case.calculation_id]
        loaded.apply(Action.APPROVE, "system", Role.system, AT)
        loaded.record_recovery(recovery, Decimal("250.00"), AT, AT)
        await uow.cases.save([loaded])
    async with store.start() as uow:
        stored = await uow.cases.get(case.id)
    assert stored is not None
    assert (stored.state, stored.recovery_id, stored.recovery_amount, stored.recovery_opened_at) == (
        CaseState.REVERSED_AFTER_PAYMENT, recovery, Decimal("250.00"), AT)
    assert [t[2:5] for t in await store.trail(case.id)] == [
        ("open", None, "awaiting_subdistrict"), ("approve", "awaiting_subdistrict", "approved"),
        ("open_recovery", "approved", "reversed_after_payment")]


def person(ref: str, version: int, changed: datetime | None = None) -> dict[str, Any]:
    return {"person_ref": ref, "identity_enc": f"cipher-{version}", "district_code": "310110",
            "subdistrict_code": "310110001", "periods": [{"category": "subsistence"}], "consents": [],
            "account_version": version, "account_changed_at": changed, "recorded_at": AT}


async def test_person_repository(store: Store) -> None:
    one, two = uuid.uuid4().hex * 2, uuid.uuid4().hex * 2
    async with store.start() as uow:
        assert await uow.people.locked([one, two]) == {}
        await uow.people.upsert([person(one, 1), person(two, 1)])
    async with store.start() as uow:
        await uow.people.upsert([person(one, 2, AT)])
    async with store.start() as uow:
        kept = await uow.people.locked([one, two, uuid.uuid4().hex * 2])
    assert {ref: (p.identity_enc, p.account_version, p.account_changed_at, p.periods) for ref, p in kept.items()} == {
        one: ("cipher-2", 2, AT, [{"category": "subsistence"}]),
        two: ("cipher-1", 1, None, [{"category": "subsistence"}])}


def calculation(calculation_id: uuid.UUID, assistance: str) -> dict[str, Any]:
    return {"calculation_id": calculation_id, "settlement_id": uuid.uuid4(), "person_ref": "cd" * 32, "year": 2026,
            "hospital_id": "H001", "hospital_settlement_id": "S-1", "discharge_date": date(2026, 3, 1),
            "deductible_applied": Decimal("0.00"), "assistance": Decimal(assistance),
            "deductible": Decimal("0.00"), "cap": Decimal("60000.00")}


async def test_calculation_repository(store: Store) -> None:
    kept, given_back = uuid.uuid4(), uuid.uuid4()
    before = await store.released()
    async with store.start() as uow:
        await uow.calculations.add([calculation(kept, "10.00"), calculation(given_back, "20.00")])
        await uow.calculations.add([calculation(kept, "99.00")])  # seen before: kept as it was
        await uow.calculations.release([])
    async with store.start() as uow:
        await uow.calculations.release([given_back, uuid.uuid4()])
    assert await store.released() - before == {given_back}


@pytest.mark.parametrize("auto_approve", [False, True])
async def test_a_batch_costs_the_same_statements_for_one_calculation_or_a_hundred(database: Database,
                                                                                  auto_approve: bool) -> None:
    """The hot path stays bulk, in normal operation and under the bench's auto-approval (whose audit entries,
    an opening without a from_state and an approval with one, once split the audit INSERT into one per row)."""
    config = ApprovalSettings(database_name=SETTINGS.database_name, bench_auto_approve=auto_approve)
    service = case_service(dependencies(config), lambda: unit_of_work(database, ApprovalUnitOfWork))

    async def statements(events: list[Event]) -> int:
        with statements_sent(database) as sent:
            async with unit_of_work(database, ApprovalUnitOfWork) as uow:
                await service.handle(uow, events)
        return len(sent)

    def unhinted(calc: ev.AssistanceCalculated, n: int) -> ev.AssistanceCalculated:
        # some with the hospital's number and some without: rows with and without a NULL in one batch
        return calc.model_copy(update={"hospital_settlement_id": None}) if n % 2 else calc

    batches = [[unhinted(calculated("120.00"), n) for n in range(size)] for size in (1, 100)]
    # calculations kept, cases inserted with their audit (one statement), the decisions (auto-approval) in the outbox
    assert [await statements([event(c) for c in batch]) for batch in batches] == [[2, 2], [3, 3]][auto_approve]
    async with unit_of_work(database, ApprovalUnitOfWork) as uow:
        opened = await uow.cases.by_calculation({c.calculation_id for batch in batches for c in batch})
    assert len(opened) == 101
    settled = [[event(ev.TransferSettled(payment_id=uuid.uuid4(), case_id=case.id, calculation_id=calc_id,
                                         settlement_id=case.settlement_id, status="failed", amount=case.amount,
                                         reason="account_closed"), TRANSFER_SETTLED)
                for calc_id, case in list(opened.items())[first:last]]
               for first, last in ((0, 1), (1, 101))]
    # the payment statuses, the failures counted
    assert [await statements(events) for events in settled] == [2, 2]
