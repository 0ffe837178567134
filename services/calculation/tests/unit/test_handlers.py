"""Calculation's service layer through the handler bootstrap wires, on a fake unit of work with in-memory
repositories (no database, no broker): what each batch of events does to calculations, ledgers and the events
published."""

import copy
import uuid
from dataclasses import replace
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from calculation import bootstrap
from calculation.adapters.repositories import CalculationRepository, LedgerRepository, PolicyRepository
from calculation.config import CalculationSettings
from calculation.domain.calculation import Calculation, CalculationStatus, Ledgers
from calculation.domain.policy import Policy
from calculation.service_layer.policies import publish_policy, seed_policies
from calculation.service_layer.unit_of_work import CalculationUnitOfWork
from opentelemetry.trace import INVALID_SPAN

from shared.contracts import events as ev
from shared.contracts.envelope import Envelope
from shared.errors import Conflict
from shared.messaging.consumer import Event

REGION = "990100"
POLICY = Policy.model_validate({
    "policy_id": "unit", "version": 1, "region_code": REGION, "effective_from": "2026-01-01",
    "categories": {"low_income": {
        "deductible": "1000.00", "cap": "3000.00", "per_settlement_cap": "2000.00",
        "ratios": {"inpatient": {"default": "0.70"}, "outpatient_chronic": {"default": "0.60"},
                   "outpatient": {"default": "0.50"}}}}})


class FakePolicies(PolicyRepository):
    def __init__(self, policies: list[Policy] = ()) -> None:  # type: ignore[assignment]
        self.stored = {(p.policy_id, p.version): (p, datetime.now(UTC), False) for p in policies}

    async def all(self) -> list[Policy]:
        return [p for p, _, _ in self.stored.values()]

    async def lock(self) -> None:
        pass

    async def latest_version(self, policy_id: str) -> int | None:
        return max((v for pid, v in self.stored if pid == policy_id), default=None)

    async def add(self, policy: Policy, published_by: str) -> None:
        self.stored[(policy.policy_id, policy.version)] = (policy, datetime.now(UTC), False)

    async def seed(self, policies):  # type: ignore[no-untyped-def]
        new = [p for p in policies if (p.policy_id, p.version) not in self.stored]
        for p in new:
            await self.add(p, "seed")
        return len(new)

    async def unannounced(self):  # type: ignore[no-untyped-def]
        return [(p, at) for p, at, announced in self.stored.values() if not announced]

    async def mark_announced(self) -> None:
        self.stored = {k: (p, at, True) for k, (p, at, _) in self.stored.items()}


class FakeLedgers(LedgerRepository):
    def __init__(self) -> None:  # type: ignore[call-arg]
        self.positions: dict = {}  # type: ignore[type-arg]

    async def lock(self, keys):  # type: ignore[no-untyped-def]
        return Ledgers({k: self.positions[k] for k in keys if k in self.positions})

    async def save(self, ledgers: Ledgers) -> None:
        self.positions.update(ledgers.changed)


class FakeCalculations(CalculationRepository):
    """Keeps copies, as a database would: what a handler changes counts only once saved."""

    def __init__(self) -> None:  # type: ignore[call-arg]
        self.stored: dict[uuid.UUID, Calculation] = {}
        self.recoveries: dict[uuid.UUID, Decimal] = {}

    def _copy(self, calc: Calculation, with_assessment: bool = False) -> Calculation:
        return replace(copy.copy(calc), events=[], recovery=None, recovered=calc.calculation_id in self.recoveries,
                       assessment=calc.assessment if with_assessment else None)

    async def known(self, settlement_ids):  # type: ignore[no-untyped-def]
        return {c.settlement_id for c in self.stored.values()} & set(settlement_ids)

    async def add(self, calculations):  # type: ignore[no-untyped-def]
        for calc in calculations:
            assert calc.assessment is not None
            self.stored[calc.calculation_id] = self._copy(calc, with_assessment=True)

    async def replace(self, calculations):  # type: ignore[no-untyped-def]
        await self.add(calculations)

    async def waiting(self, region_code: str) -> list[Calculation]:
        return [self._copy(c, with_assessment=True) for c in self.stored.values()
                if c.status is CalculationStatus.NO_POLICY and c.district_code == region_code]

    async def locked(self, ids=(), *, settlement_id=None):  # type: ignore[no-untyped-def]
        return [self._copy(c) for c in self.stored.values()
                if c.calculation_id in ids or c.settlement_id == settlement_id]

    async def save(self, calculations):  # type: ignore[no-untyped-def]
        for calc in calculations:
            stored = self.stored[calc.calculation_id]
            stored.status, stored.released = calc.status, calc.released
            if calc.recovery is not None:
                self.recoveries.setdefault(calc.calculation_id, calc.recovery.amount)


class FakeUnitOfWork(CalculationUnitOfWork):
    def __init__(self, policies: list[Policy] = (POLICY,)) -> None:  # type: ignore[assignment]
        super().__init__(None, CalculationSettings())  # type: ignore[arg-type]
        self.policies = FakePolicies(policies)
        self.ledgers = FakeLedgers()
        self.calculations = FakeCalculations()

    def published(self, event_type: str | None = None) -> list[ev.EventData]:
        """What was emitted so far, oldest first (optionally of one type)."""
        return [o.envelope.payload() for o in self.pending
                if event_type is None or o.envelope.event_type == event_type]

    def calculation_of(self, settlement: ev.SettlementReceived) -> Calculation:
        return next(c for c in self.calculations.stored.values() if c.settlement_id == settlement.settlement_id)


handle = bootstrap.CONSUMERS[0].handler(None)  # type: ignore[arg-type]  # the handler needs no runtime
PERSON = "a" * 64


def event(data: ev.EventData, person_ref: str = PERSON) -> Event:
    return Event(topic="t", envelope=Envelope.wrap(data, person_ref=person_ref, producer="test"), data=data,
                 record=None, span=INVALID_SPAN)


def settlement(scope: str, basic: str = "0.00", discharge: date = date(2026, 3, 1)) -> ev.SettlementReceived:
    return ev.SettlementReceived(
        settlement_id=uuid.uuid4(), hospital_id="H001", hospital_settlement_id="C-1", hospital_level=2,
        visit_type="inpatient", admission_date=discharge, discharge_date=discharge,
        total_amount=Decimal(scope), policy_scope_amount=Decimal(scope), basic_insurance_paid=Decimal(basic),
        critical_illness_paid=Decimal("0.00"))


def eligible(s: ev.SettlementReceived, district: str = REGION, category: str = "low_income") -> ev.EligibilityDecided:
    return ev.EligibilityDecided(settlement=s, eligible=True, reason="eligible", category=category,
                                 district_code=district, subdistrict_code=f"{district}001")


async def calculate(uow: FakeUnitOfWork, *settlements: ev.SettlementReceived) -> list[ev.AssistanceCalculated]:
    await handle(uow, [event(eligible(s)) for s in settlements])
    by_settlement = {e.settlement_id: e for e in uow.published("AssistanceCalculated")}
    return [by_settlement[s.settlement_id] for s in settlements]  # type: ignore[misc]


def ledger(uow: FakeUnitOfWork, year: int = 2026) -> tuple[str, str]:
    position = uow.ledgers.positions[(PERSON, year)]
    return f"{position.deductible_used:.2f}", f"{position.committed:.2f}"


async def test_one_batch_is_calculated_in_order_against_the_persons_ledger() -> None:
    uow = FakeUnitOfWork()
    first, second, third = await calculate(uow, settlement("1500.00"), settlement("4000.00"), settlement("3000.00"))
    # 1500: 1000 deductible, 500 x 0.70 = 350. 4000 x 0.70 = 2800, capped at 2000 per settlement.
    # 3000 x 0.70 = 2100, but only 3000 - 2350 = 650 is left of the year's cap.
    assert [c.figures.assistance for c in (first, second, third)] == [Decimal("350.00"), Decimal("2000.00"),
                                                                       Decimal("650.00")]
    assert [c.figures.deductible_applied for c in (first, second, third)] == [Decimal("1000.00"), 0, 0]
    assert ledger(uow) == ("1000.00", "3000.00")
    assert {c.status for c in uow.calculations.stored.values()} == {CalculationStatus.CALCULATED}


async def test_a_decision_delivered_twice_is_calculated_once() -> None:
    uow = FakeUnitOfWork()
    s = settlement("2000.00")
    await handle(uow, [event(eligible(s)), event(eligible(s))])
    await handle(uow, [event(eligible(s))])
    assert len(uow.published("AssistanceCalculated")) == 1 and len(uow.calculations.stored) == 1


async def test_without_a_policy_it_waits_and_publishing_one_calculates_it() -> None:
    uow = FakeUnitOfWork(policies=[])
    s = settlement("1500.00")
    await handle(uow, [event(eligible(s))])
    assert uow.calculation_of(s).status is CalculationStatus.NO_POLICY and not uow.published()
    assert await publish_policy(uow, POLICY, "admin") == 1
    assert [type(e).__name__ for e in uow.published()] == ["PolicyPublished", "AssistanceCalculated"]
    assert uow.calculation_of(s).status is CalculationStatus.CALCULATED and ledger(uow) == ("1000.00", "350.00")


async def test_a_published_version_never_changes() -> None:
    uow = FakeUnitOfWork()
    with pytest.raises(Conflict) as refused:
        await publish_policy(uow, POLICY, "admin")
    assert refused.value.code == "policy_version_exists" and refused.value.field == "version"


async def test_seeding_announces_every_version_once() -> None:
    uow = FakeUnitOfWork(policies=[])
    assert await seed_policies(uow, [POLICY]) == 1
    assert await seed_policies(uow, [POLICY]) == 0
    assert [e.policy_id for e in uow.published("PolicyPublished")] == ["unit"]  # type: ignore[attr-defined]


def decided(calc: ev.AssistanceCalculated, decision: str) -> ev.CaseDecided:
    return ev.CaseDecided(case_id=uuid.uuid4(), calculation_id=calc.calculation_id, settlement_id=calc.settlement_id,
                          decision=decision, amount=calc.figures.assistance, district_code=REGION,
                          subdistrict_code=f"{REGION}001", decided_at=datetime.now(UTC))


def settled(calc: ev.AssistanceCalculated) -> ev.TransferSettled:
    return ev.TransferSettled(payment_id=uuid.uuid4(), case_id=uuid.uuid4(), calculation_id=calc.calculation_id,
                              settlement_id=calc.settlement_id, status="settled", amount=calc.figures.assistance)


def reversed_(calc: ev.AssistanceCalculated) -> ev.SettlementReversed:
    return ev.SettlementReversed(settlement_id=calc.settlement_id, hospital_id="H001", hospital_settlement_id="C-1",
                                 reversed_at=datetime.now(UTC), reason="voided_at_hospital")


STEPS = {"approved": lambda c: decided(c, "approved"), "rejected": lambda c: decided(c, "rejected"),
         "cancelled": lambda c: decided(c, "cancelled"), "settled": settled, "reversed": reversed_}


@pytest.mark.parametrize("one_batch", [False, True], ids=["a batch each", "one batch"])
@pytest.mark.parametrize(("steps", "status", "ledger_after", "published", "recovered"), [
    (["approved", "settled"], "paid", ("1000.00", "350.00"), [], None),
    (["rejected"], "rejected", ("0.00", "0.00"), [], None),
    (["rejected", "cancelled"], "cancelled", ("0.00", "0.00"), [], None),  # given back once
    (["approved", "reversed"], "reversed", ("0.00", "0.00"), ["AssistanceReversed"], None),
    (["approved", "settled", "reversed"], "reversed", ("1000.00", "350.00"),
     ["AssistanceReversed", "RecoveryOpened"], "350.00"),
    (["approved", "settled", "reversed", "reversed"], "reversed", ("1000.00", "350.00"),
     ["AssistanceReversed", "RecoveryOpened"], "350.00"),
    (["approved", "reversed", "settled", "settled"], "reversed", ("0.00", "0.00"),
     ["AssistanceReversed", "RecoveryOpened"], "350.00"),
    (["approved", "settled", "rejected"], "paid", ("1000.00", "350.00"), [], None),
    (["reversed", "rejected"], "reversed", ("0.00", "0.00"), ["AssistanceReversed"], None),
])
async def test_a_calculation_from_approval_to_payment_rejection_or_reversal(
        steps: list[str], status: str, ledger_after: tuple[str, str], published: list[str], recovered: str | None,
        one_batch: bool) -> None:
    uow = FakeUnitOfWork()
    s = settlement("1500.00")
    [calc] = await calculate(uow, s)
    following = [event(STEPS[step](calc)) for step in steps]
    for batch in [following] if one_batch else [[e] for e in following]:
        await handle(uow, batch)
    assert uow.calculation_of(s).status is CalculationStatus(status)
    assert ledger(uow) == ledger_after
    assert [type(e).__name__ for e in uow.published()][1:] == published
    assert uow.calculations.recoveries.get(calc.calculation_id) == (Decimal(recovered) if recovered else None)
    reversal = next((e for e in uow.published("AssistanceReversed")), None)
    if reversal is not None:
        assert reversal.released_assistance == (0 if recovered and steps.index("settled") < steps.index("reversed")
                                                else Decimal("350.00"))  # type: ignore[attr-defined]


async def test_a_share_given_back_is_charged_to_the_next_settlement_of_the_same_batch() -> None:
    uow = FakeUnitOfWork()
    [first] = await calculate(uow, settlement("3000.00"))  # 1000 deductible, 2000 x 0.70 = 1400
    later = settlement("3000.00")
    await handle(uow, [event(decided(first, "rejected")), event(eligible(later))])
    [recalculated] = [e for e in uow.published("AssistanceCalculated") if e.settlement_id == later.settlement_id]
    assert recalculated.figures.deductible_applied == Decimal("1000.00")  # type: ignore[attr-defined]
    assert ledger(uow) == ("1000.00", "1400.00")
