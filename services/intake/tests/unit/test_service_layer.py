"""Intake's service layer through its bootstrap, on a fake unit of work with in-memory repositories: what is
stored, what is emitted, and what is refused, without a database or a broker."""

import uuid
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, cast

import pytest
from intake.bootstrap import journey_handler
from intake.config import IntakeSettings
from intake.dependencies import IntakeDeps
from intake.domain.journey import Journey
from intake.domain.settlement import Known, News, Settlement
from intake.domain.submission import SettlementIn
from intake.service_layer.accept import accept_settlements, reverse_settlement
from intake.service_layer.unit_of_work import IntakeUnitOfWork

from shared.contracts import events as ev
from shared.contracts.envelope import Envelope
from shared.errors import Conflict, NotFound
from shared.messaging.consumer import Event
from shared.service import Runtime

NATIONAL_ID, NAME = "310110198001011236", "王芳"


class FakeSettlements:
    """The settlement repository's contract, in memory (the real one: tests/integration/test_repositories.py)."""

    def __init__(self) -> None:
        self.rows: dict[uuid.UUID, Settlement] = {}
        self.steps: list[tuple[uuid.UUID, Journey, str | None]] = []

    async def lock_known(self, hospital_id: str, ids: Iterable[str]) -> dict[str, Known]:
        wanted = set(ids)
        return {s.hospital_settlement_id: Known(s.id, s.fingerprint or "", s.status.value) for s in self.rows.values()
                if s.hospital_id == hospital_id and s.hospital_settlement_id in wanted}

    async def add(self, settlements: Sequence[Settlement]) -> None:
        for s in settlements:
            self.rows[s.id] = s
        self._steps(settlements)

    async def get(self, hospital_id: str, hospital_settlement_id: str) -> Settlement | None:
        return next((s for s in self.rows.values()
                     if (s.hospital_id, s.hospital_settlement_id) == (hospital_id, hospital_settlement_id)), None)

    async def learn(self, news: Sequence[News]) -> list[News]:
        ours = [n for n in news if n.settlement_id in self.rows]
        for n in ours:
            self.rows[n.settlement_id].learn_news(n)
        self._steps([self.rows[n.settlement_id] for n in ours])
        return ours

    async def save(self, settlements: Sequence[Settlement]) -> None:
        self._steps(settlements)

    def _steps(self, settlements: Sequence[Settlement]) -> None:
        for s in settlements:
            self.steps += [(s.id, step.status, step.reason) for step in s.steps]
            s.steps = []


class FakeUnitOfWork(IntakeUnitOfWork):
    def __init__(self) -> None:  # no session: nothing here reaches a database
        self._events = []
        self.settlements = cast(Any, FakeSettlements())


@pytest.fixture
def deps() -> IntakeDeps:
    return IntakeDeps.build(IntakeSettings())


def item(sid: str = "S-1", total: str = "9000.00") -> SettlementIn:
    return SettlementIn.model_validate({
        "hospital_settlement_id": sid, "hospital_level": 2, "visit_type": "inpatient",
        "admission_date": "2026-02-20", "discharge_date": "2026-03-02",
        "patient": {"national_id": NATIONAL_ID, "name": NAME}, "total_amount": total,
        "policy_scope_amount": "8000.00", "basic_insurance_paid": "5000.00", "critical_illness_paid": "1000.00"})


async def test_new_settlements_are_stored_sealed_and_announced_without_personal_data(deps: IntakeDeps) -> None:
    uow = FakeUnitOfWork()
    results = await accept_settlements(uow, deps, "H001", [item("S-1"), item("S-2"), item("S-1")])
    assert [(r.hospital_settlement_id, r.outcome) for r in results] == [
        ("S-1", "created"), ("S-2", "created"), ("S-1", "duplicate")]
    assert results[2].settlement_id == results[0].settlement_id
    stored = uow.settlements.rows[results[0].settlement_id]
    assert stored.sealed is not None and NATIONAL_ID not in stored.sealed.national_id
    assert deps.cipher.decrypt(stored.sealed.national_id, "H001/S-1") == NATIONAL_ID
    assert stored.person_ref == deps.person_ref(NATIONAL_ID)
    assert [e.envelope.event_type for e in uow.pending] == ["SettlementReceived", "SettlementReceived"]
    for e in uow.pending:
        assert e.topic == "settlement.received" and e.envelope.person_ref == stored.person_ref
        assert NATIONAL_ID not in e.envelope.to_bytes().decode() and NAME not in e.envelope.to_bytes().decode()
    assert [(status, reason) for _, status, reason in uow.settlements.steps] == [("received", None)] * 2


async def test_a_resent_settlement_is_a_duplicate_that_writes_and_emits_nothing(deps: IntakeDeps) -> None:
    uow = FakeUnitOfWork()
    [first] = await accept_settlements(uow, deps, "H001", [item()])
    again = FakeUnitOfWork()
    again.settlements = uow.settlements
    [second] = await accept_settlements(again, deps, "H001", [item()])
    assert (second.outcome, second.settlement_id) == ("duplicate", first.settlement_id)
    assert again.pending == () and len(uow.settlements.rows) == 1


@pytest.mark.parametrize(("stored", "pushed", "fields"), [
    ([], [item("S-1"), item("S-1", total="9100.00")], ["items.1.hospital_settlement_id"]),
    ([item("S-1")], [item("S-2"), item("S-1", total="9100.00")], ["items.1.hospital_settlement_id"]),
    ([item("S-1")], [item("S-1", total="9100.00"), item("S-1", total="9200.00")],
     ["items.1.hospital_settlement_id", "items.0.hospital_settlement_id", "items.1.hospital_settlement_id"]),
])
async def test_one_id_with_two_bodies_refuses_the_whole_request(deps: IntakeDeps, stored: list[SettlementIn],
                                                                pushed: list[SettlementIn], fields: list[str]) -> None:
    uow = FakeUnitOfWork()
    await accept_settlements(uow, deps, "H001", stored)
    before = dict(uow.settlements.rows)
    refused = FakeUnitOfWork()
    refused.settlements = uow.settlements
    with pytest.raises(Conflict) as raised:
        await accept_settlements(refused, deps, "H001", pushed)
    assert raised.value.code == "conflicting_duplicate"
    assert [e["field"] for e in raised.value.errors or []] == fields
    assert uow.settlements.rows == before and refused.pending == ()


async def test_a_reversal_is_announced_once_and_an_unknown_id_is_not_found(deps: IntakeDeps) -> None:
    uow = FakeUnitOfWork()
    await accept_settlements(uow, deps, "H001", [item()])
    reverse = FakeUnitOfWork()
    reverse.settlements = uow.settlements
    settlement = await reverse_settlement(reverse, "H001", "S-1", "voided_at_hospital")
    assert (settlement.status, settlement.status_reason) == (Journey.REVERSED, "voided_at_hospital")
    [event] = reverse.pending
    assert (event.topic, event.envelope.event_type) == ("settlement.received", "SettlementReversed")
    twice = FakeUnitOfWork()
    twice.settlements = uow.settlements
    await reverse_settlement(twice, "H001", "S-1", None)
    assert twice.pending == ()
    with pytest.raises(NotFound):
        await reverse_settlement(twice, "H002", "S-1", None)  # another hospital's is no settlement of yours


def _event(data: ev.EventData, ref: str) -> Event:
    return Event("topic", Envelope.wrap(data, person_ref=ref, producer="test"), data, cast(Any, None),
                 cast(Any, None))


async def test_the_journey_handler_moves_each_settlement_forward_in_one_save(deps: IntakeDeps) -> None:
    uow = FakeUnitOfWork()
    [accepted] = await accept_settlements(uow, deps, "H001", [item()])
    sid, ref = accepted.settlement_id, deps.person_ref(NATIONAL_ID)
    received = ev.SettlementReceived(
        settlement_id=sid, hospital_id="H001", hospital_settlement_id="S-1", hospital_level=2,
        visit_type="inpatient", admission_date=date(2026, 2, 20), discharge_date=date(2026, 3, 2),
        total_amount=Decimal("9000.00"), policy_scope_amount=Decimal("8000.00"),
        basic_insurance_paid=Decimal("5000.00"), critical_illness_paid=Decimal("1000.00"))
    nothing: Any = None  # the handler needs only the deps
    handler = journey_handler(Runtime(nothing, nothing, nothing, nothing, nothing, deps))
    follow = FakeUnitOfWork()
    follow.settlements = uow.settlements
    await handler(follow, [
        _event(ev.EligibilityDecided(settlement=received, eligible=False, reason="no_consent"), ref),
        _event(ev.EligibilityDecided(settlement=received, eligible=True, reason="eligible"), ref),
        _event(ev.CaseDecided(case_id=uuid.uuid4(), calculation_id=uuid.uuid4(), settlement_id=sid,
                              decision="approved", amount=Decimal("1.00"), district_code="310110",
                              subdistrict_code="310110001", decided_at=datetime.now(UTC)), ref),
        _event(ev.EligibilityDecided(settlement=received.model_copy(update={"settlement_id": uuid.uuid4()}),
                                     eligible=True, reason="eligible"), ref),  # not ours: ignored
    ])
    settlement = uow.settlements.rows[sid]
    assert (settlement.status, settlement.eligibility_reason) == (Journey.APPROVED, "eligible")
    assert [(s, r) for i, s, r in uow.settlements.steps if i == sid][1:] == [
        ("parked", "no_consent"), ("eligible", "eligible"), ("approved", None)]
    assert follow.pending == ()  # following emits nothing
