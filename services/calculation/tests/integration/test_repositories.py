"""Calculation's repositories against the real PostgreSQL: what goes in comes back, in bulk, and the unit of work
commits rows and events together or not at all."""

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from calculation.bootstrap import MIGRATIONS
from calculation.config import CalculationSettings
from calculation.domain.calculation import Calculation, CalculationStatus, Ledgers, Recovery
from calculation.domain.money_rule import LedgerPosition
from calculation.domain.policy import Policy
from calculation.service_layer.assess import handle_events
from calculation.service_layer.unit_of_work import CalculationUnitOfWork
from opentelemetry.trace import INVALID_SPAN
from sqlalchemy import text

from shared.contracts import events as ev
from shared.contracts.envelope import Envelope
from shared.db import Database
from shared.messaging.consumer import Event
from shared.testing import migrated_database, statements_sent
from shared.unit_of_work import unit_of_work

pytestmark = pytest.mark.integration
REGION = "990200"


@pytest.fixture(scope="module")
async def db() -> AsyncIterator[Database]:
    settings = CalculationSettings(database_name="test_calculation_repositories")
    async with migrated_database(settings, MIGRATIONS) as database:
        yield database


def policy(version: int, region: str = REGION) -> Policy:
    return Policy.model_validate({
        "policy_id": f"repo-{region}", "version": version, "region_code": region, "effective_from": "2026-01-01",
        "categories": {"low_income": {"deductible": "100.00", "cap": "900.00", "ratios": {
            "inpatient": {"default": "0.50"}, "outpatient_chronic": {"default": "0.50"},
            "outpatient": {"default": "0.50"}}}}})


def waiting(person_ref: str, region: str = REGION) -> Calculation:
    s = ev.SettlementReceived(
        settlement_id=uuid.uuid4(), hospital_id="H001", hospital_settlement_id="C-1", hospital_level=2,
        visit_type="inpatient", admission_date=date(2026, 3, 1), discharge_date=date(2026, 3, 1),
        total_amount=Decimal("500.00"), policy_scope_amount=Decimal("500.00"),
        basic_insurance_paid=Decimal("0.00"), critical_illness_paid=Decimal("0.00"))
    return Calculation.of(uuid.uuid4(), person_ref, ev.EligibilityDecided(
        settlement=s, eligible=True, reason="eligible", category="low_income", district_code=region,
        subdistrict_code=f"{region}001"))


async def test_policy_repository(db: Database) -> None:
    async with unit_of_work(db, CalculationUnitOfWork) as uow:
        assert await uow.policies.seed([policy(1), policy(2)]) == 2
        assert await uow.policies.seed([policy(2)]) == 0
        await uow.policies.add(policy(3), "admin")
        assert await uow.policies.latest_version(f"repo-{REGION}") == 3
        assert {p.version for p in await uow.policies.all() if p.region_code == REGION} == {1, 2, 3}
        assert [p.version for p, _ in await uow.policies.unannounced() if p.region_code == REGION] == [1, 2, 3]
        await uow.policies.mark_announced()
        assert await uow.policies.unannounced() == []


async def test_a_policy_is_validated_once_and_again_only_when_its_document_differs(db: Database) -> None:
    region = "990201"
    async with unit_of_work(db, CalculationUnitOfWork) as uow:
        await uow.policies.add(policy(1, region), "admin")
        first = [p for p in await uow.policies.all() if p.region_code == region]
    async with unit_of_work(db, CalculationUnitOfWork) as uow:
        again = [p for p in await uow.policies.all() if p.region_code == region]
        assert len(again) == 1 and again[0] is first[0]  # the same document: the object read before
        # Not something publishing does (a version never changes), but a different document is read as it is.
        await uow.session.execute(text(
            "UPDATE policy SET document = jsonb_set(document, '{categories,low_income,cap}', '\"950.00\"') "
            "WHERE policy_id = :pid AND version = 1"), {"pid": f"repo-{region}"})
        changed = [p for p in await uow.policies.all() if p.region_code == region]
        assert changed[0] is not first[0] and changed[0].amounts("low_income").cap == Decimal("950.00")
        await uow.session.rollback()


async def test_ledger_repository(db: Database) -> None:
    a, b = uuid.uuid4().hex, uuid.uuid4().hex
    async with unit_of_work(db, CalculationUnitOfWork) as uow:
        ledgers = await uow.ledgers.lock({(a, 2026), (b, 2026)})
        assert ledgers.get(a, 2026) == LedgerPosition(2026, Decimal(0), Decimal(0))
        ledgers.put(a, LedgerPosition(2026, Decimal("100.00"), Decimal("250.50")))
        ledgers.put(b, LedgerPosition(2026, Decimal("20.00"), Decimal("0.01")))
        await uow.ledgers.save(ledgers)
    async with unit_of_work(db, CalculationUnitOfWork) as uow:
        again = await uow.ledgers.lock({(a, 2026), (b, 2026), (a, 2027)})
        assert again.get(a, 2026) == LedgerPosition(2026, Decimal("100.00"), Decimal("250.50"))
        assert again.get(b, 2026) == LedgerPosition(2026, Decimal("20.00"), Decimal("0.01"))
        assert again.changed == {}
        await uow.ledgers.save(Ledgers())  # nothing changed: no statement


async def test_calculation_repository(db: Database) -> None:
    person = uuid.uuid4().hex
    first, second = waiting(person), waiting(person)
    async with unit_of_work(db, CalculationUnitOfWork) as uow:
        await uow.calculations.add([first, second])
        assert await uow.calculations.known([first.settlement_id, uuid.uuid4()]) == {first.settlement_id}
    async with unit_of_work(db, CalculationUnitOfWork) as uow:
        found = [c for c in await uow.calculations.waiting(REGION) if c.person_ref == person]
        assert [c.calculation_id for c in found] == [first.calculation_id, second.calculation_id]
        assert all(c.assessment and c.assessment.settlement.policy_scope_amount == Decimal("500.00") for c in found)
        ledgers = await uow.ledgers.lock({(person, 2026)})
        assert all(c.calculate([policy(9, REGION)], ledgers) for c in found)
        await uow.calculations.replace(found)
        await uow.ledgers.save(ledgers)
    async with unit_of_work(db, CalculationUnitOfWork) as uow:
        [calc] = await uow.calculations.locked({first.calculation_id})
        assert (calc.status, calc.assistance, calc.deductible_applied, calc.recovered) == (
            CalculationStatus.CALCULATED, Decimal("200.00"), Decimal("100.00"), False)
        assert calc.assessment is None, "a state change loads no settlement"
        calc.status = CalculationStatus.PAID
        calc.recovery = Recovery(uuid.uuid4(), Decimal("200.00"), datetime.now(UTC))
        [other] = await uow.calculations.locked(settlement_id=second.settlement_id)
        other.released = True
        await uow.calculations.save([calc, other])
    async with unit_of_work(db, CalculationUnitOfWork) as uow:
        by_id = {c.calculation_id: c for c in await uow.calculations.locked({first.calculation_id,
                                                                             second.calculation_id})}
        assert (by_id[first.calculation_id].status, by_id[first.calculation_id].recovered) == (
            CalculationStatus.PAID, True)
        assert by_id[second.calculation_id].released and not by_id[second.calculation_id].recovered
        stored = (await uow.session.execute(text(
            "SELECT figures->>'assistance', settlement->>'settlement_id', policy_version FROM calculation "
            "WHERE id = :id"), {"id": second.calculation_id})).one()
        assert tuple(stored) == ("250.00", str(second.settlement_id), 9)  # no deductible left after the first


async def test_nothing_is_kept_of_a_unit_of_work_that_fails(db: Database) -> None:
    calc = waiting(uuid.uuid4().hex)
    with pytest.raises(RuntimeError):
        async with unit_of_work(db, CalculationUnitOfWork) as uow:
            await uow.calculations.add([calc])
            raise RuntimeError("the handler failed")
    async with unit_of_work(db, CalculationUnitOfWork) as uow:
        assert await uow.calculations.known([calc.settlement_id]) == set()


async def test_a_batch_costs_the_same_statements_for_one_settlement_or_a_hundred(db: Database) -> None:
    """The hot path stays bulk: calculating a batch is one statement per table (and the policy lock), approving
    and paying one read and one update, whatever the number of settlements."""
    async def statements(events: list[Event]) -> int:
        with statements_sent(db) as sent:
            async with unit_of_work(db, CalculationUnitOfWork) as uow:
                await handle_events(uow, events)
        return len(sent)

    def wrapped(data: ev.EventData, person_ref: str) -> Event:
        return Event(topic="t", envelope=Envelope.wrap(data, person_ref=person_ref, producer="test"), data=data,
                     record=None, span=INVALID_SPAN)

    async with unit_of_work(db, CalculationUnitOfWork) as uow:
        await uow.policies.add(policy(1, "990300"), "admin")
    batches = [[waiting(uuid.uuid4().hex * 2, "990300") for _ in range(n)] for n in (1, 100)]
    decided = [[wrapped(ev.EligibilityDecided(settlement=c.assessment.settlement, eligible=True,
                                              reason="eligible", category="low_income", district_code="990300",
                                              subdistrict_code="990300001"), c.person_ref)
                for c in batch if c.assessment] for batch in batches]
    # known, policy lock, policies, ledgers locked, ledgers saved, calculations inserted, outbox
    assert [await statements(events) for events in decided] == [7, 7]
    async with unit_of_work(db, CalculationUnitOfWork) as uow:
        ids = [{c.calculation_id for c in await uow.calculations.locked(settlement_id=s.settlement_id)}
               for batch in batches for s in (c.assessment.settlement for c in batch if c.assessment)]
    followed = []
    for events in decided:
        batch = []
        for e in events:
            [calculation_id] = ids.pop(0)
            assert isinstance(e.data, ev.EligibilityDecided)
            s = e.data.settlement
            batch.append(wrapped(ev.CaseDecided(
                case_id=uuid.uuid4(), calculation_id=calculation_id, settlement_id=s.settlement_id,
                decision="approved", amount=Decimal("200.00"), district_code="990300",
                subdistrict_code="990300001", decided_at=datetime.now(UTC)), e.envelope.person_ref))
            batch.append(wrapped(ev.TransferSettled(
                payment_id=uuid.uuid4(), case_id=uuid.uuid4(), calculation_id=calculation_id,
                settlement_id=s.settlement_id, status="settled", amount=Decimal("200.00")), e.envelope.person_ref))
        followed.append(batch)
    # read, update: none of them paid or reversed when read, so no read of recoveries (none can have one)
    assert [await statements(events) for events in followed] == [2, 2]


async def test_a_batch_mixing_calculated_and_waiting_settlements_is_still_one_insert(db: Database) -> None:
    """Calculated rows carry a policy and figures, waiting ones (no policy for the region) carry NULLs there: the
    ORM's bulk INSERT, which leaves a None out, once sent one INSERT per run of alike rows."""
    async with unit_of_work(db, CalculationUnitOfWork) as uow:
        await uow.policies.add(policy(1, "990500"), "admin")

    def decided(region: str) -> Event:
        c = waiting(uuid.uuid4().hex * 2, region)
        assert c.assessment is not None
        data = ev.EligibilityDecided(settlement=c.assessment.settlement, eligible=True, reason="eligible",
                                     category="low_income", district_code=region, subdistrict_code=f"{region}001")
        return Event(topic="t", envelope=Envelope.wrap(data, person_ref=c.person_ref, producer="test"), data=data,
                     record=None, span=INVALID_SPAN)

    async def inserts(events: list[Event]) -> int:
        with statements_sent(db) as sent:
            async with unit_of_work(db, CalculationUnitOfWork) as uow:
                await handle_events(uow, events)
        return sum(s.startswith("INSERT INTO calculation ") for s in sent)

    for size in (2, 100):
        events = [decided("990500" if n % 2 else "990600") for n in range(size)]  # 990600 has no policy
        assert await inserts(events) == 1
    async with unit_of_work(db, CalculationUnitOfWork) as uow:
        assert len(await uow.calculations.waiting("990600")) == 51
        nulls = await uow.session.scalar(text(  # SQL NULL, not the JSON value null
            "SELECT count(*) FROM calculation WHERE district_code = '990600' AND figures IS NULL"))
        assert nulls == 51
