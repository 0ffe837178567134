"""Eligibility's service layer through the handlers bootstrap wires and its commands, on a fake unit of work with
in-memory repositories (no database, no broker): screening, parking and screening again, and who may change
whose registry entry or consent."""

import random
import uuid
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from eligibility import bootstrap
from eligibility.adapters.repositories import (
    AccountOnFile,
    ContactRepository,
    PersonEntry,
    PersonRecords,
    PolicyTermsRepository,
    RegistryRepository,
    ScreeningRepository,
    _row,
)
from eligibility.adapters.tables import ConsentRow, ContactRow, PersonRow, RegistryPeriodRow, ScreeningRow
from eligibility.config import EligibilitySettings, Keys
from eligibility.domain.registry import RegistryRecordIn
from eligibility.domain.rules import Consent, Facts, PersonArea, PolicyTerms, RegistryPeriod
from eligibility.service_layer.registry import import_registry, revoke_consent, sign_consent
from eligibility.service_layer.unit_of_work import EligibilityUnitOfWork
from opentelemetry.trace import INVALID_SPAN
from simulators.hospital.feed import national_id

from shared.contracts import events as ev
from shared.contracts.envelope import Envelope
from shared.contracts.topics import REGISTRY_KEY, region_key
from shared.contracts.types import ConsentLookback
from shared.errors import Forbidden, Invalid, NotFound
from shared.messaging.consumer import Event
from shared.security.crypto import person_ref
from shared.security.staff_auth import Principal, Role

rng = random.Random(16)
SETTINGS = EligibilitySettings()
KEYS = Keys.of(SETTINGS)
DISTRICT, SUBDISTRICT = "310110", "310110001"
OFFICER = Principal("officer-1", Role.registry_officer, None, None)
CLERK = Principal("clerk-1", Role.clerk, DISTRICT, SUBDISTRICT)
OTHER_CLERK = Principal("clerk-2", Role.clerk, DISTRICT, "310110002")


class FakeTerms(PolicyTermsRepository):
    def __init__(self) -> None:  # type: ignore[call-arg]
        self.terms: list[PolicyTerms] = []

    async def add(self, published):  # type: ignore[no-untyped-def]
        for p in published:
            if all((t.policy_id, t.version) != (p.policy_id, p.policy_version) for t in self.terms):
                self.terms.append(PolicyTerms(p.policy_id, p.policy_version, p.region_code, p.effective_from,
                                              p.effective_to, p.consent_lookback))

    async def of_districts(self, districts):  # type: ignore[no-untyped-def]
        return [t for t in self.terms if t.region_code in set(districts)]


class FakeRegistry(RegistryRepository):
    def __init__(self, terms: FakeTerms) -> None:  # type: ignore[call-arg]
        self.terms = terms
        self.persons: dict[str, PersonRow] = {}
        self.periods: dict[tuple, RegistryPeriodRow] = {}  # type: ignore[type-arg]
        self.consents: dict[uuid.UUID, ConsentRow] = {}

    async def lock(self, refs):  # type: ignore[no-untyped-def]
        pass

    async def person(self, ref: str) -> PersonRow | None:
        return self.persons.get(ref)

    async def accounts_locked(self, refs):  # type: ignore[no-untyped-def]
        return {r: AccountOnFile(p.bank_account_enc, p.bank_account_fingerprint, p.account_masked, p.account_version)
                for r in refs if (p := self.persons.get(r))}

    async def districts(self, refs):  # type: ignore[no-untyped-def]
        return {r: self.persons[r].district_code for r in refs if r in self.persons}

    async def save_persons(self, rows):  # type: ignore[no-untyped-def]
        for row in rows:
            self.persons[row["person_ref"]] = PersonRow(**row)

    async def save_periods(self, rows):  # type: ignore[no-untyped-def]
        for row in rows:
            self.periods[(row["person_ref"], row["category"], row["valid_from"])] = RegistryPeriodRow(**row)

    async def facts(self, refs):  # type: ignore[no-untyped-def]
        refs = set(refs)
        facts = Facts()
        for ref in refs & set(self.persons):
            facts.areas[ref] = PersonArea(self.persons[ref].district_code, self.persons[ref].subdistrict_code)
        for p in self.periods.values():
            if p.person_ref in refs:
                facts.periods.setdefault(p.person_ref, []).append(RegistryPeriod(p.category, p.valid_from, p.valid_to))
        for c in self.consents.values():
            if c.person_ref in refs:
                facts.consents.setdefault(c.person_ref, []).append(Consent(c.signed_on, c.revoked_on))
        facts.terms = await self.terms.of_districts({a.district_code for a in facts.areas.values()})
        return facts

    async def records(self, refs, persons=None):  # type: ignore[no-untyped-def]
        return PersonRecords(
            list(persons) if persons is not None else
            [PersonEntry(p.person_ref, p.national_id_enc, p.name_enc, p.district_code, p.subdistrict_code,
                         p.account_version) for r in refs if (p := self.persons.get(r))],
            {r: [RegistryPeriod(p.category, p.valid_from, p.valid_to) for p in self.periods.values()
                 if p.person_ref == r] for r in refs},
            {r: [Consent(c.signed_on, c.revoked_on) for c in self.consents.values() if c.person_ref == r]
             for r in refs})

    async def add_consent(self, consent: ConsentRow) -> None:
        self.consents[consent.id] = consent

    async def consent_person(self, consent_id):  # type: ignore[no-untyped-def]
        return self.consents[consent_id].person_ref if consent_id in self.consents else None

    async def consent(self, consent_id, *, for_update=False):  # type: ignore[no-untyped-def]
        return self.consents.get(consent_id)

    async def open_consent(self, ref, signed_on):  # type: ignore[no-untyped-def]
        return next((c for c in self.consents.values() if (c.person_ref, c.signed_on, c.revoked_on) ==
                     (ref, signed_on, None)), None)

    async def revoke_consent(self, consent_id, revoked_on):  # type: ignore[no-untyped-def]
        self.consents[consent_id].revoked_on = revoked_on


class FakeContacts(ContactRepository):
    def __init__(self) -> None:  # type: ignore[call-arg]
        self.contacts: dict[str, ContactRow] = {}

    async def locked(self, refs):  # type: ignore[no-untyped-def]
        return {r: self.contacts[r] for r in refs if r in self.contacts}

    async def save(self, rows):  # type: ignore[no-untyped-def]
        for row in rows:
            self.contacts[row["person_ref"]] = ContactRow(**row)


class FakeScreenings(ScreeningRepository):
    def __init__(self, registry: FakeRegistry) -> None:  # type: ignore[call-arg]
        self.registry = registry
        self.rows: dict[uuid.UUID, ScreeningRow] = {}

    async def add(self, screenings):  # type: ignore[no-untyped-def]
        new = {s.settlement.settlement_id: s for s in screenings if s.settlement.settlement_id not in self.rows}
        for sid, s in new.items():
            self.rows[sid] = ScreeningRow(**_row(s, s.settlement.model_dump(mode="json")))
        return set(new)

    async def redecide(self, screenings):  # type: ignore[no-untyped-def]
        for s in screenings:
            self.rows[s.settlement.settlement_id] = ScreeningRow(**_row(s, s.settlement.model_dump(mode="json")))

    async def reverse(self, settlement_id):  # type: ignore[no-untyped-def]
        if settlement_id in self.rows:
            self.rows[settlement_id].reversed, self.rows[settlement_id].parked = True, False

    async def parked(self, refs):  # type: ignore[no-untyped-def]
        return sorted((r for r in self.rows.values() if r.person_ref in set(refs) and r.parked and not r.reversed),
                      key=lambda r: r.discharge_date)

    async def parked_in(self, region_code, effective_from, effective_to, reasons):  # type: ignore[no-untyped-def]
        districts = await self.registry.districts([r.person_ref for r in self.rows.values()])
        return [r for r in await self.parked({r.person_ref for r in self.rows.values()})
                if districts.get(r.person_ref) == region_code and r.reason in reasons
                and effective_from <= r.discharge_date and (effective_to is None or r.discharge_date <= effective_to)]


class FakeUnitOfWork(EligibilityUnitOfWork):
    def __init__(self) -> None:
        super().__init__(None, SETTINGS)  # type: ignore[arg-type]
        self.terms = FakeTerms()
        self.registry = FakeRegistry(self.terms)
        self.contacts = FakeContacts()
        self.screenings = FakeScreenings(self.registry)

    def published(self, event_type: str) -> list:  # type: ignore[type-arg]
        payloads = [(o.envelope.payload(), o.envelope.data) for o in self.pending
                    if o.envelope.event_type == event_type]
        # registry entries are written as JSON without their models: what is sent is what the model would write
        assert all(payload.model_dump(mode="json") == data for payload, data in payloads)
        return [payload for payload, _ in payloads]

    def entries(self, chunk_type: str) -> list[tuple[str, ev.EventData]]:
        """Every person's fact in the registry events of `chunk_type`, in the order published."""
        return [entry for chunk in self.published(chunk_type) for entry in chunk.entries()]

    def decisions(self, settlement_id: uuid.UUID) -> list[ev.EligibilityDecided]:
        return [d for d in self.published("EligibilityDecided") if d.settlement.settlement_id == settlement_id]


screen = bootstrap.CONSUMERS[0].handler(None)  # type: ignore[arg-type]  # the handlers need no runtime
record_policies = bootstrap.CONSUMERS[1].handler(None)  # type: ignore[arg-type]


def event(data: ev.EventData, ref: str) -> Event:
    return Event(topic="t", envelope=Envelope.wrap(data, person_ref=ref, producer="test"), data=data, record=None,
                 span=INVALID_SPAN)


def settlement(discharge: date) -> ev.SettlementReceived:
    return ev.SettlementReceived(
        settlement_id=uuid.uuid4(), hospital_id="H001", hospital_settlement_id="E-1", hospital_level=2,
        visit_type="inpatient", admission_date=discharge, discharge_date=discharge,
        total_amount=Decimal("1000.00"), policy_scope_amount=Decimal("900.00"),
        basic_insurance_paid=Decimal("400.00"), critical_illness_paid=Decimal("0.00"))


def record(nid: str, **over: str) -> RegistryRecordIn:
    return RegistryRecordIn.model_validate({
        "national_id": nid, "name": "王芳", "category": "subsistence", "district_code": DISTRICT,
        "subdistrict_code": SUBDISTRICT, "valid_from": "2026-01-01", "bank_account": "6222020200445566", **over})


async def registered(uow: FakeUnitOfWork, **over: str) -> tuple[str, str]:
    nid = national_id(rng)
    await import_registry(uow, KEYS, OFFICER, [record(nid, **over)])
    return nid, person_ref(KEYS.pepper, nid)


@pytest.mark.parametrize(("listed", "signed_on", "discharge", "reason", "parked"), [
    (False, None, date(2026, 3, 1), "not_registered", True),
    (True, None, date(2026, 3, 1), "no_consent", True),
    (True, date(2026, 2, 1), date(2025, 12, 1), "category_not_valid_on_date", True),
    (True, date(2026, 2, 1), date(2026, 3, 1), "eligible", False),
    (True, date(2026, 4, 1), date(2026, 3, 1), "no_consent", True),  # no policy known: the strict lookback
])
async def test_each_settlement_is_screened_stored_and_published(listed: bool, signed_on: date | None,
                                                                discharge: date, reason: str, parked: bool) -> None:
    uow = FakeUnitOfWork()
    nid = national_id(rng)
    if listed:
        await import_registry(uow, KEYS, OFFICER, [record(nid)])
    if signed_on:
        await sign_consent(uow, KEYS, OFFICER, nid, signed_on, "counter")
    s = settlement(discharge)
    await screen(uow, [event(s, person_ref(KEYS.pepper, nid))])
    [decision] = uow.decisions(s.settlement_id)
    assert (decision.reason, decision.eligible, uow.screenings.rows[s.settlement_id].parked) == (
        reason, reason == "eligible", parked)
    assert (decision.district_code, decision.category) == ((DISTRICT, "subsistence") if reason == "eligible"
                                                           else (None, None))


@pytest.mark.parametrize("with_policy", [False, True])
async def test_a_decision_is_written_as_its_model_dumps_it(with_policy: bool) -> None:
    """The decisions of arrivals are written as JSON from the wire's settlement, not as a dumped model: the same
    keys in the same order and the same values as the model would write, and the screening row's settlement too."""
    uow = FakeUnitOfWork()
    if with_policy:  # the lookback's policy named in the decision
        await record_policies(uow, [event(ev.PolicyPublished(
            policy_id="p", policy_version=3, region_code=DISTRICT, effective_from=date(2026, 1, 1),
            consent_lookback=ConsentLookback.CALENDAR_YEAR, published_at=datetime.now(UTC)), region_key(DISTRICT))])
    arrivals = []
    for listed, signed_on, discharge in [(False, None, date(2026, 3, 1)), (True, None, date(2026, 3, 1)),
                                         (True, date(2026, 2, 1), date(2025, 12, 1)),
                                         (True, date(2026, 2, 1), date(2026, 3, 1)),
                                         (True, date(2026, 4, 1), date(2026, 3, 1))]:
        nid = national_id(rng)
        if listed:
            await import_registry(uow, KEYS, OFFICER, [record(nid)])
        if signed_on:
            await sign_consent(uow, KEYS, OFFICER, nid, signed_on, "counter")
        arrivals.append(event(settlement(discharge), person_ref(KEYS.pepper, nid)))
    await screen(uow, arrivals)
    sent = {o.envelope.data["settlement"]["settlement_id"]: o.envelope for o in uow.pending
            if o.envelope.event_type == "EligibilityDecided"}
    assert len(sent) == len(arrivals)
    reasons = set()
    for arrival in arrivals:
        envelope = sent[str(arrival.data.settlement_id)]  # type: ignore[attr-defined]
        dumped = envelope.payload().model_dump(mode="json")
        assert list(envelope.data) == list(dumped) and envelope.data == dumped
        assert envelope.data["settlement"] is arrival.envelope.data
        assert envelope.schema_version == ev.EligibilityDecided.schema_version
        reasons.add((envelope.data["reason"], envelope.data["lookback_policy_id"]))
    assert {r for r, _ in reasons} == {"not_registered", "no_consent", "category_not_valid_on_date", "eligible"}
    assert any(p == "p" for _, p in reasons) == with_policy


def test_the_screening_row_keeps_the_settlement_as_received_or_as_dumped() -> None:
    from eligibility.adapters.repositories import _screening_arrays
    from eligibility.domain.rules import EligibilityDecision, Reason, Screening

    s = settlement(date(2026, 3, 1))
    decision = EligibilityDecision(False, Reason.NO_CONSENT, None, parked=True)
    wire = Envelope.from_bytes(Envelope.wrap(s, person_ref="ab" * 32, producer="t").to_bytes()).data
    received, dumped = (_screening_arrays([Screening("ab" * 32, s, decision, None, j)])["settlement"][0]
                        for j in (wire, None))
    assert received == dumped == s.model_dump_json()


async def test_a_settlement_seen_again_keeps_its_first_decision_and_a_reversal_is_forwarded() -> None:
    uow = FakeUnitOfWork()
    _, ref = await registered(uow)
    s = settlement(date(2026, 3, 1))
    await screen(uow, [event(s, ref), event(s, ref)])
    await screen(uow, [event(s, ref)])
    assert len(uow.decisions(s.settlement_id)) == 1
    reversal = ev.SettlementReversed(settlement_id=s.settlement_id, hospital_id="H001",
                                     hospital_settlement_id="E-1", reversed_at=datetime.now(UTC),
                                     reason="voided_at_hospital")
    await screen(uow, [event(reversal, ref)])
    assert uow.published("SettlementReversed") == [reversal]
    row = uow.screenings.rows[s.settlement_id]
    assert row.reversed and not row.parked


async def test_a_parked_settlement_is_screened_again_once_the_consent_is_signed() -> None:
    uow = FakeUnitOfWork()
    nid, ref = await registered(uow)
    s = settlement(date(2026, 3, 1))
    await screen(uow, [event(s, ref)])
    result = await sign_consent(uow, KEYS, CLERK, nid, date(2026, 2, 1), "counter")
    assert (result.rescreened, result.registry_status, result.recorded) == (1, "listed", True)
    assert [(d.reason, d.rescreened) for d in uow.decisions(s.settlement_id)] == [("no_consent", False),
                                                                                  ("eligible", True)]
    again = await sign_consent(uow, KEYS, CLERK, nid, date(2026, 2, 1), "counter")
    assert not again.recorded and again.consent.id == result.consent.id and len(uow.decisions(s.settlement_id)) == 2


async def test_a_policy_with_calendar_year_lookback_screens_again_what_waited_for_a_consent_in_time() -> None:
    uow = FakeUnitOfWork()
    nid, ref = await registered(uow)
    s = settlement(date(2026, 3, 1))
    await screen(uow, [event(s, ref)])
    await sign_consent(uow, KEYS, OFFICER, nid, date(2026, 5, 1), "counter")  # later that year
    assert [d.reason for d in uow.decisions(s.settlement_id)] == ["no_consent"]
    published = ev.PolicyPublished(policy_id="p", policy_version=1, region_code=DISTRICT,
                                   effective_from=date(2026, 1, 1), consent_lookback=ConsentLookback.CALENDAR_YEAR,
                                   published_at=datetime.now(UTC))
    await record_policies(uow, [event(published, region_key(DISTRICT))])
    last = uow.decisions(s.settlement_id)[-1]
    assert (last.reason, last.consent_lookback, last.lookback_policy_id) == ("eligible", "calendar_year", "p")


async def test_an_import_publishes_the_account_only_when_it_changes() -> None:
    uow = FakeUnitOfWork()
    nid, ref = await registered(uow)
    await import_registry(uow, KEYS, OFFICER, [record(nid)])
    await import_registry(uow, KEYS, OFFICER, [record(nid, bank_account="6222020200999999")])
    assert [(r, p.account_version) for r, p in uow.entries("PayeeAccountsUpdated")] == [(ref, 1), (ref, 2)]
    assert [r for r, _ in uow.entries("PersonsRecorded")] == [ref] * 3
    assert {o.envelope.person_ref for o in uow.pending if o.topic.startswith("registry.")} == {REGISTRY_KEY}
    assert b"6222020200999999" not in b"".join(o.envelope.to_bytes() for o in uow.pending)


async def test_an_officer_confined_to_a_district_imports_only_its_records_and_nothing_else_is_stored() -> None:
    uow = FakeUnitOfWork()
    confined = Principal("officer-2", Role.registry_officer, DISTRICT, None)
    with pytest.raises(Forbidden) as refused:
        await import_registry(uow, KEYS, confined, [
            record(national_id(rng)), record(national_id(rng), district_code="310107", subdistrict_code="310107001")])
    assert refused.value.code == "outside_area" and [e["index"] for e in refused.value.errors or []] == [1]
    assert uow.registry.persons == {} and uow.pending == ()


@pytest.mark.parametrize(("recorder", "listed", "outcome"), [
    (CLERK, True, "listed"),
    (OTHER_CLERK, True, NotFound),
    (CLERK, False, NotFound),
    (OFFICER, False, "waiting_for_registry"),
])
async def test_who_may_record_a_consent(recorder: Principal, listed: bool, outcome: object) -> None:
    uow = FakeUnitOfWork()
    nid = national_id(rng)
    if listed:
        await import_registry(uow, KEYS, OFFICER, [record(nid)])
    if isinstance(outcome, str):
        result = await sign_consent(uow, KEYS, recorder, nid, date(2026, 2, 1), "counter")
        assert result.registry_status == outcome
    else:
        with pytest.raises(NotFound) as refused:
            await sign_consent(uow, KEYS, recorder, nid, date(2026, 2, 1), "counter")
        assert refused.value.code == "person_not_found" and uow.registry.consents == {}


async def test_a_revocation_counts_from_its_date_and_not_before_the_signing() -> None:
    uow = FakeUnitOfWork()
    nid, _ = await registered(uow)
    consent = (await sign_consent(uow, KEYS, CLERK, nid, date(2026, 2, 1), "counter")).consent
    with pytest.raises(Invalid):
        await revoke_consent(uow, KEYS, CLERK, consent.id, date(2026, 1, 1))
    with pytest.raises(NotFound):
        await revoke_consent(uow, KEYS, OTHER_CLERK, consent.id, date(2026, 6, 1))
    revoked = await revoke_consent(uow, KEYS, CLERK, consent.id, date(2026, 6, 1))
    assert revoked.consent.revoked_on == date(2026, 6, 1)
    later = await revoke_consent(uow, KEYS, CLERK, consent.id, date(2026, 7, 1))
    assert later.consent.revoked_on == date(2026, 6, 1), "a later date does not undo an earlier revocation"


async def test_an_import_publishes_its_persons_and_accounts_many_to_an_event() -> None:
    uow = FakeUnitOfWork()
    nids = [national_id(rng) for _ in range(ev.PERSONS_PER_EVENT * 2 + 1)]
    await import_registry(uow, KEYS, OFFICER, [
        record(nid, bank_account=f"6222{i:012d}", phone=f"1380000{i:04d}") for i, nid in enumerate(nids)])
    refs = [person_ref(KEYS.pepper, nid) for nid in nids]
    for chunk_type in ("PersonsRecorded", "PayeeAccountsUpdated", "ContactsUpdated"):
        assert [len(c.entries()) for c in uow.published(chunk_type)] == [ev.PERSONS_PER_EVENT] * 2 + [1]
        assert sorted(r for r, _ in uow.entries(chunk_type)) == sorted(refs)
    assert not uow.published("PersonRecorded") and not uow.published("PayeeAccountUpdated")
    await sign_consent(uow, KEYS, OFFICER, nids[3], date(2026, 2, 1), "counter")  # a consent: a chunk of one
    (consented,) = uow.published("PersonsRecorded")[-1].persons
    assert (consented.person_ref, consented.consents) == (refs[3], [ev.ConsentPeriod(signed_on=date(2026, 2, 1))])
    sent = b"".join(o.envelope.to_bytes() for o in uow.pending)
    assert not any(secret.encode() in sent for secret in (nids[7], f"6222{7:012d}", f"1380000{7:04d}"))


def test_a_registry_event_is_split_until_its_envelope_fits_the_bound() -> None:
    uow = FakeUnitOfWork()
    periods = [ev.CategoryPeriod(category="subsistence", valid_from=date(2026, 1, 1), valid_to=date(2026, 12, 31))]
    consents = [ev.ConsentPeriod(signed_on=date(2026, 1, 5), revoked_on=date(2026, 6, 1))]
    largest = [ev.RecordedPerson(person_ref=f"{i:064x}", identity_ciphertext="v1:" + "x" * 400,
                                 district_code=DISTRICT, subdistrict_code=SUBDISTRICT, periods=periods * 100,
                                 consents=consents * 100, account_version=9) for i in range(60)]
    events = uow.publish_chunked("registry.person", ev.PersonsRecorded, [p.model_dump(mode="json") for p in largest])
    sizes = [len(o.envelope.to_bytes()) for o in uow.pending]
    assert events == len(sizes) > 1 and max(sizes) <= ev.MAX_REGISTRY_EVENT_BYTES
    assert [r for c in uow.published("PersonsRecorded") for r, _ in c.entries()] == [p.person_ref for p in largest]
