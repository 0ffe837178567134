"""Eligibility's repositories against the real PostgreSQL: what goes in comes back, in bulk, first decisions stay
first, and what screening reads of a person is what the registry holds."""

import random
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from eligibility.adapters.tables import ConsentRow, ScreeningRow
from eligibility.bootstrap import MIGRATIONS
from eligibility.config import EligibilitySettings, Keys
from eligibility.domain.registry import RegistryRecordIn
from eligibility.domain.rules import (
    Consent,
    EligibilityDecision,
    PersonArea,
    PolicyTerms,
    Reason,
    RegistryPeriod,
    Screening,
)
from eligibility.service_layer.registry import ImportResult, import_registry
from eligibility.service_layer.screening import screen_events
from eligibility.service_layer.unit_of_work import EligibilityUnitOfWork
from opentelemetry.trace import INVALID_SPAN
from simulators.hospital.feed import national_id
from sqlalchemy import select
from sqlmodel import col

from shared.contracts.envelope import Envelope
from shared.contracts.events import PolicyPublished, SettlementReceived
from shared.contracts.types import Category, ConsentLookback
from shared.db import Database
from shared.messaging.consumer import Event
from shared.security.crypto import person_ref
from shared.security.staff_auth import Principal, Role
from shared.testing import migrated_database, statements_sent
from shared.unit_of_work import unit_of_work

pytestmark = pytest.mark.integration
DISTRICT = "310199"


@pytest.fixture(scope="module")
async def db() -> AsyncIterator[Database]:
    settings = EligibilitySettings(database_name="test_eligibility_repositories")
    async with migrated_database(settings, MIGRATIONS) as database:
        yield database


def person_row(ref: str, district: str = DISTRICT) -> dict[str, object]:
    return {"person_ref": ref, "national_id_enc": "enc-id", "name_enc": "enc-name", "district_code": district,
            "subdistrict_code": f"{district}001", "bank_account_enc": None, "bank_account_fingerprint": None,
            "account_masked": None, "account_version": 0, "updated_at": datetime.now(UTC)}


def settlement(discharge: date) -> SettlementReceived:
    return SettlementReceived(
        settlement_id=uuid.uuid4(), hospital_id="H001", hospital_settlement_id="E-1", hospital_level=2,
        visit_type="inpatient", admission_date=discharge, discharge_date=discharge, total_amount=Decimal("10.00"),
        policy_scope_amount=Decimal("10.00"), basic_insurance_paid=Decimal("0.00"),
        critical_illness_paid=Decimal("0.00"))


def parked(ref: str, reason: Reason, discharge: date) -> Screening:
    return Screening(ref, settlement(discharge), EligibilityDecision(False, reason, None, parked=True))


async def test_registry_repository(db: Database) -> None:
    ref, other = uuid.uuid4().hex * 2, uuid.uuid4().hex * 2
    consent_id = uuid.uuid4()
    async with unit_of_work(db, EligibilityUnitOfWork) as uow:
        await uow.registry.lock([ref, other])
        await uow.registry.save_persons([person_row(ref), person_row(other, "310198")])
        await uow.registry.save_periods([
            {"person_ref": ref, "category": "subsistence", "valid_from": date(2026, 1, 1), "valid_to": None}])
        await uow.registry.save_periods([  # the same start again: the end date is replaced
            {"person_ref": ref, "category": "subsistence", "valid_from": date(2026, 1, 1),
             "valid_to": date(2026, 12, 31)}])
        await uow.registry.add_consent(ConsentRow(id=consent_id, person_ref=ref, signed_on=date(2026, 2, 1),
                                                  channel="counter", recorded_by="t", created_at=datetime.now(UTC)))
        await uow.terms.add([PolicyPublished(policy_id="p", policy_version=1, region_code=DISTRICT,
                                             effective_from=date(2026, 1, 1), consent_lookback="calendar_year",
                                             published_at=datetime.now(UTC))])
    async with unit_of_work(db, EligibilityUnitOfWork) as uow:
        assert await uow.registry.districts([ref, other, "f" * 64]) == {ref: DISTRICT, other: "310198"}
        assert set(await uow.registry.accounts_locked([ref, other, "f" * 64])) == {ref, other}
        facts = await uow.registry.facts([ref, other])
        assert facts.areas[ref] == PersonArea(DISTRICT, f"{DISTRICT}001")
        assert facts.periods == {ref: [RegistryPeriod("subsistence", date(2026, 1, 1), date(2026, 12, 31))]}
        assert facts.consents == {ref: [Consent(date(2026, 2, 1), None)]}
        assert facts.terms == [PolicyTerms("p", 1, DISTRICT, date(2026, 1, 1), None, ConsentLookback.CALENDAR_YEAR)]
        assert await uow.registry.consent_person(consent_id) == ref
        assert (await uow.registry.open_consent(ref, date(2026, 2, 1))).id == consent_id  # type: ignore[union-attr]
        await uow.registry.revoke_consent(consent_id, date(2026, 5, 1))
        assert await uow.registry.open_consent(ref, date(2026, 2, 1)) is None
        records = await uow.registry.records([ref])
        assert [p.person_ref for p in records.persons] == [ref]
        assert [c.revoked_on for c in records.consents[ref]] == [date(2026, 5, 1)]


async def test_screening_and_contact_repositories(db: Database) -> None:
    ref = uuid.uuid4().hex * 2
    waiting, early = parked(ref, Reason.NO_CONSENT, date(2026, 4, 1)), parked(ref, Reason.NO_CONSENT, date(2026, 2, 1))
    async with unit_of_work(db, EligibilityUnitOfWork) as uow:
        await uow.registry.save_persons([person_row(ref)])
        assert await uow.screenings.add([waiting, early]) == {waiting.settlement.settlement_id,
                                                               early.settlement.settlement_id}
        decided = Screening(ref, waiting.settlement, EligibilityDecision(True, Reason.ELIGIBLE, Category.SUBSISTENCE,
                                                                        parked=False))
        assert await uow.screenings.add([decided]) == set(), "a settlement decided before keeps its decision"
        await uow.contacts.save([{"person_ref": ref, "phone_enc": None, "phone_fingerprint": None,
                                  "phone_masked": "138****5678", "sms_opt_out": True, "version": 1,
                                  "updated_at": datetime.now(UTC)}])
    async with unit_of_work(db, EligibilityUnitOfWork) as uow:
        rows = await uow.screenings.parked([ref])
        assert [r.settlement_id for r in rows] == [early.settlement.settlement_id, waiting.settlement.settlement_id]
        in_period = await uow.screenings.parked_in(DISTRICT, date(2026, 3, 1), None, ["no_consent"])
        assert [r.settlement_id for r in in_period if r.person_ref == ref] == [waiting.settlement.settlement_id]
        assert await uow.screenings.parked_in(DISTRICT, date(2026, 3, 1), None, ["not_registered"]) == []
        await uow.screenings.redecide([decided])
        await uow.screenings.reverse(early.settlement.settlement_id)
        assert (await uow.contacts.locked([ref]))[ref].phone_masked == "138****5678"
    async with unit_of_work(db, EligibilityUnitOfWork) as uow:
        assert await uow.screenings.parked([ref]) == [], "decided and reversed settlements are parked no more"


async def test_a_batch_costs_the_same_statements_for_one_settlement_or_a_hundred(db: Database) -> None:
    """Screening stays bulk: one read of what is known of the persons (the registry, periods, consents, their
    districts' policy terms), one insert of decisions and one of the outbox, whatever the batch, and however its
    decisions differ (eligible ones carry a category, parked ones none: the ORM's bulk INSERT once split a batch
    into one statement per run of rows alike)."""
    async def statements(events: list[Event]) -> int:
        with statements_sent(db) as sent:
            async with unit_of_work(db, EligibilityUnitOfWork) as uow:
                await screen_events(uow, events)
        return len(sent)

    batches = [[uuid.uuid4().hex * 2 for _ in range(n)] for n in (1, 100)]
    listed = [ref for batch in batches for ref in batch[::2]]
    async with unit_of_work(db, EligibilityUnitOfWork) as uow:
        await uow.registry.save_persons([person_row(ref) for batch in batches for ref in batch])
        await uow.registry.save_periods([{"person_ref": ref, "category": "subsistence", "valid_from": date(2026, 1, 1),
                                          "valid_to": None} for ref in listed])
        for ref in listed:
            await uow.registry.add_consent(ConsentRow(id=uuid.uuid4(), person_ref=ref, signed_on=date(2026, 1, 2),
                                                      channel="counter", recorded_by="clerk-1"))
    arrivals = [[Event(topic="t", envelope=Envelope.wrap(s, person_ref=ref, producer="test"), data=s, record=None,
                       span=INVALID_SPAN) for ref in batch for s in [settlement(date(2026, 3, 1))]]
                for batch in batches]
    assert [await statements(events) for events in arrivals] == [3, 3]
    async with unit_of_work(db, EligibilityUnitOfWork) as uow:
        decided = {s.settlement_id: s for s in (await uow.session.execute(
            select(ScreeningRow).where(col(ScreeningRow.person_ref).in_(batches[1])))).scalars()}
    assert len(decided) == 100
    assert {(s.eligible, s.category, s.parked, s.reason) for s in decided.values()} == {
        (True, "subsistence", False, "eligible"), (False, None, True, "not_registered")}
    assert all(s.settlement["settlement_id"] == str(sid) and not s.reversed for sid, s in decided.items())


async def test_an_import_costs_the_same_statements_for_one_person_or_a_chunk(db: Database) -> None:
    """The registry import stays set-based: one statement per table (and one for the outbox) however many persons,
    new or already listed, with or without a new bank account; what it stored reads back whole."""
    rng = random.Random(28)
    keys, officer = Keys.of(db.settings), Principal("officer-1", Role.registry_officer, None, None)

    def records(n: int, tag: str) -> list[RegistryRecordIn]:
        ids = list(dict.fromkeys(national_id(rng) for _ in range(n + 50)))[:n]
        return [RegistryRecordIn.model_validate({
            "national_id": ids[i], "name": f"{tag}{i}", "category": "subsistence", "district_code": DISTRICT,
            "subdistrict_code": f"{DISTRICT}001", "valid_from": "2026-01-01",
            "bank_account": f"6222{i:012d}" if i % 2 else None}) for i in range(n)]

    async def statements(batch: list[RegistryRecordIn]) -> tuple[int, ImportResult]:
        with statements_sent(db) as sent:
            async with unit_of_work(db, EligibilityUnitOfWork) as uow:
                result = await import_registry(uow, keys, officer, batch)
        return len(sent), result

    one, chunk = records(1, "one"), records(2000, "chunk")
    first = [await statements(batch) for batch in (one, chunk)]
    again = [await statements([r.model_copy(update={"valid_to": date(2026, 12, 31)}) for r in batch])
             for batch in (one, chunk)]
    assert [n for n, _ in first + again] == [first[0][0]] * 4, [n for n, _ in first + again]
    assert first[0][0] <= 8
    assert (first[1][1].persons_created, first[1][1].payee_updates) == (2000, 1000)
    assert (again[1][1].persons_created, again[1][1].payee_updates) == (0, 0), "the same accounts are no new version"
    async with unit_of_work(db, EligibilityUnitOfWork) as uow:
        ref = person_ref(keys.pepper, chunk[1].national_id)
        stored = (await uow.registry.records([ref]))
        accounts = await uow.registry.accounts_locked([ref])
    assert stored.periods[ref] == [RegistryPeriod("subsistence", date(2026, 1, 1), date(2026, 12, 31))]
    assert keys.at_rest.decrypt(stored.persons[0].name_enc, ref) == "chunk1"
    assert (accounts[ref].account_masked, accounts[ref].account_version) == ("************0001", 1)
