"""Calculation as its own process: the money rule over Kafka, per-person ledgers, policies, releases, recoveries.

Expected figures come from `RuleBook` below, the rule as DESIGN.md section 5 writes it, kept apart from the
service's code, plus a few figures written out by hand (half-up at a tie, the caps).
"""

import asyncio
import secrets
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Callable
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import httpx
import orjson
import pytest
from aiokafka import AIOKafkaProducer
from calculation.bootstrap import MIGRATIONS
from calculation.config import CalculationSettings

from shared.contracts.envelope import Envelope
from shared.contracts.events import (
    AssistanceCalculated,
    AssistanceReversed,
    CaseDecided,
    EligibilityDecided,
    RecoveryOpened,
    SettlementReceived,
    SettlementReversed,
    TransferSettled,
)
from shared.contracts.topics import (
    ASSISTANCE_CALCULATED,
    CASE_DECIDED,
    ELIGIBILITY_DECIDED,
    POLICY_PUBLISHED,
    TRANSFER_SETTLED,
    region_key,
)
from shared.messaging.kafka import KafkaProducer
from shared.testing import (
    ServiceUnderTest,
    read_topic,
    start_service,
    unique_prefix,
)

pytestmark = pytest.mark.integration
REGION, SUBDISTRICT = "990100", "990100001"
CENT = Decimal("0.01")
RATIOS = {"inpatient": {"default": "0.70", "3": "0.65"}, "outpatient_chronic": {"default": "0.60"},
          "outpatient": {"default": "0.50"}}
POLICY = {"policy_id": "test-ledger", "version": 1, "region_code": REGION, "effective_from": "2026-01-01",
          "effective_to": None, "categories": {"low_income": {
              "deductible": "1000.00", "cap": "3000.00", "per_settlement_cap": "2000.00", "ratios": RATIOS}}}


class Calc(ServiceUnderTest):
    async def send_in_one_poll(self, topic: str, envelopes: list[Envelope]) -> None:
        """Several events made visible at once (one Kafka transaction; the service reads committed only),
        so the service's consumer takes them in one batch, as it does under load."""
        producer = AIOKafkaProducer(bootstrap_servers=self.settings.kafka_bootstrap_servers,
                                    transactional_id=f"{self.settings.topic_prefix}{uuid.uuid4().hex}")
        await producer.start()
        try:
            async with producer.transaction():
                for envelope in envelopes:
                    await producer.send(self.settings.topic(topic), envelope.to_bytes(),
                                        key=envelope.person_ref.encode())
        finally:
            await producer.stop()

    async def published(self, match: Callable[[Envelope], bool], expect: int, timeout: float = 60) -> list[Envelope]:
        """The events on assistance.calculated that `match`, once at least `expect` of them are there."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            records = await read_topic(self.settings, ASSISTANCE_CALCULATED, expect=1_000_000, timeout=1)
            found = [e for e in (Envelope.from_bytes(r.value) for r in records) if match(e)]
            if len(found) >= expect:
                return found
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"expected {expect} matching events on assistance.calculated, got {len(found)}")

    async def calculated(self, settlements: list[SettlementReceived]) -> list[AssistanceCalculated]:
        """The published calculation of each settlement, in the settlements' order."""
        ids = {s.settlement_id for s in settlements}
        found = await self.published(lambda e: e.event_type == "AssistanceCalculated"
                                     and uuid.UUID(e.data["settlement_id"]) in ids, len(ids))
        by_id = {c.settlement_id: c for c in (e.payload() for e in found)}  # type: ignore[attr-defined]
        return [by_id[s.settlement_id] for s in settlements]  # type: ignore[misc]

    async def calculation(self, settlement_id: uuid.UUID, until: Callable[[dict[str, Any]], bool] = lambda c: True,
                          timeout: float = 60) -> dict[str, Any]:
        """GET /v1/calculations/{id} once it exists and `until` holds."""
        return await self.get_until(f"/v1/calculations/{settlement_id}", until, timeout)  # type: ignore[no-any-return]

    async def ledger(self, ref: str) -> list[dict[str, Any]]:
        async with self.client("ops") as ops:
            response = await ops.get(f"/v1/ledgers/{ref}")
        assert response.status_code == 200, response.text
        return response.json()  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
async def calc() -> AsyncIterator[Calc]:
    settings = CalculationSettings(topic_prefix=unique_prefix("calc"), database_name="test_calculation")
    process = await start_service("calculation", settings, MIGRATIONS)
    producer = KafkaProducer(settings)
    try:
        await producer.start()
        service = Calc(settings, process.url, producer)
        async with service.client("policy_admin") as admin:
            published = await admin.post("/v1/policies", json=POLICY)
        assert published.status_code == 201, published.text
        yield service
    finally:
        await producer.stop()
        process.stop()


class RuleBook:
    """DESIGN.md section 5, written out independently: one person's ledgers under the test policy."""

    def __init__(self, deductible: str = "1000.00", cap: str = "3000.00", per_settlement_cap: str | None = "2000.00",
                 policy_id: str = "test-ledger", version: int = 1) -> None:
        self.deductible, self.cap = Decimal(deductible), Decimal(cap)
        self.per_settlement_cap = Decimal(per_settlement_cap) if per_settlement_cap else None
        self.policy_id, self.version = policy_id, version
        self.used: dict[int, Decimal] = defaultdict(Decimal)
        self.committed: dict[int, Decimal] = defaultdict(Decimal)
        self.charged: dict[uuid.UUID, tuple[int, Decimal, Decimal]] = {}

    def charge(self, s: SettlementReceived, ratio: str) -> dict[str, str]:
        year = s.discharge_date.year
        base = max(Decimal(0), s.policy_scope_amount - s.basic_insurance_paid - s.critical_illness_paid)
        ded_left = max(Decimal(0), self.deductible - self.used[year])
        ded_applied = min(base, ded_left)
        before_caps = ((base - ded_applied) * Decimal(ratio)).quantize(CENT, rounding=ROUND_HALF_UP)
        amount = min(before_caps, self.per_settlement_cap) if self.per_settlement_cap is not None else before_caps
        cap_left = max(Decimal(0), self.cap - self.committed[year])
        assistance = min(amount, cap_left)
        figures = {
            "policy_scope_amount": f"{s.policy_scope_amount:.2f}",
            "basic_insurance_paid": f"{s.basic_insurance_paid:.2f}",
            "critical_illness_paid": f"{s.critical_illness_paid:.2f}", "base": f"{base:.2f}",
            "deductible": f"{self.deductible:.2f}", "deductible_used_before": f"{self.used[year]:.2f}",
            "deductible_left": f"{ded_left:.2f}", "deductible_applied": f"{ded_applied:.2f}", "ratio": ratio,
            "amount_before_caps": f"{before_caps:.2f}",
            "per_settlement_cap": f"{self.per_settlement_cap:.2f}" if self.per_settlement_cap is not None else None,
            "amount_after_settlement_cap": f"{amount:.2f}", "cap": f"{self.cap:.2f}",
            "committed_before": f"{self.committed[year]:.2f}", "cap_left": f"{cap_left:.2f}",
            "assistance": f"{assistance:.2f}",
        }
        self.used[year] += ded_applied
        self.committed[year] += assistance
        self.charged[s.settlement_id] = (year, ded_applied, assistance)
        return figures

    def release(self, s: SettlementReceived) -> None:
        year, ded_applied, assistance = self.charged.pop(s.settlement_id)
        self.used[year] -= ded_applied
        self.committed[year] -= assistance

    def ledgers(self) -> list[dict[str, Any]]:
        return [{"year": y, "deductible_used": f"{self.used[y]:.2f}", "committed": f"{self.committed[y]:.2f}"}
                for y in sorted(self.used)]


def person() -> str:
    return secrets.token_hex(32)


def settlement(discharge: date, scope: str, basic: str, critical: str = "0.00", visit: str = "inpatient",
               level: int = 2) -> SettlementReceived:
    return SettlementReceived(
        settlement_id=uuid.uuid4(), hospital_id="H001", hospital_settlement_id=f"C-{uuid.uuid4().hex[:10]}",
        hospital_level=level, visit_type=visit, admission_date=discharge, discharge_date=discharge,
        total_amount=Decimal(scope) + Decimal("100.00"), policy_scope_amount=Decimal(scope),
        basic_insurance_paid=Decimal(basic), critical_illness_paid=Decimal(critical))


def eligible(s: SettlementReceived, district: str = REGION, category: str = "low_income") -> EligibilityDecided:
    return EligibilityDecided(settlement=s, eligible=True, reason="eligible", category=category,
                              district_code=district, subdistrict_code=f"{district}001")


def figures(calc: AssistanceCalculated) -> dict[str, Any]:
    return calc.figures.model_dump(mode="json")


def decided(calc: AssistanceCalculated, decision: str, reason: str | None = None) -> CaseDecided:
    return CaseDecided(case_id=uuid.uuid4(), calculation_id=calc.calculation_id, settlement_id=calc.settlement_id,
                       decision=decision, reason_code=reason, amount=calc.figures.assistance, district_code=REGION,
                       subdistrict_code=SUBDISTRICT, decided_at=datetime.now(UTC))


def reversal(s: SettlementReceived) -> SettlementReversed:
    return SettlementReversed(settlement_id=s.settlement_id, hospital_id=s.hospital_id,
                              hospital_settlement_id=s.hospital_settlement_id, reversed_at=datetime.now(UTC),
                              reason="voided_at_hospital")


async def calculate_all(calc: Calc, ref: str, items: list[tuple[SettlementReceived, str]], book: RuleBook
                        ) -> list[AssistanceCalculated]:
    """Send eligible decisions in order; check every published figure against the rule book."""
    for s, _ in items:
        await calc.send(ELIGIBILITY_DECIDED, eligible(s), ref)
    results = await calc.calculated([s for s, _ in items])
    for (s, ratio), result in zip(items, results, strict=True):
        assert figures(result) == book.charge(s, ratio), s
    return results


async def test_every_figure_is_published_and_the_ledger_spreads_the_deductible_and_caps_the_year(calc: Calc) -> None:
    ref, book = person(), RuleBook()
    items = [
        (settlement(date(2026, 2, 1), "1500.00", "700.00"), "0.70"),  # all of it goes to the deductible
        (settlement(date(2026, 3, 1), "5000.00", "1500.00", "333.33", level=3), "0.65"),  # the rest of it
        (settlement(date(2026, 4, 1), "300.05", "200.00", visit="outpatient", level=1), "0.50"),  # a tie
        (settlement(date(2026, 5, 1), "6000.00", "1000.00"), "0.70"),  # per-settlement cap, then annual cap
        (settlement(date(2026, 6, 1), "800.00", "300.00", level=1), "0.70"),  # the year's cap is used up
        (settlement(date(2027, 1, 10), "1500.00", "0.00"), "0.70"),  # a new year: a new ledger
        (settlement(date(2027, 2, 1), "100.00", "150.00", visit="outpatient_chronic"), "0.60"),  # nothing left
    ]
    results = await calculate_all(calc, ref, items, book)

    assert [(r.figures.base, r.figures.deductible_applied, r.figures.amount_before_caps, r.figures.assistance)
            for r in results] == [
        (Decimal(b), Decimal(d), Decimal(a), Decimal(x)) for b, d, a, x in [
            ("800.00", "800.00", "0.00", "0.00"),
            ("3166.67", "200.00", "1928.34", "1928.34"),  # 2966.67 x 0.65 = 1928.3355
            ("100.05", "0.00", "50.03", "50.03"),  # 50.025: half-up, not half-even
            ("5000.00", "0.00", "3500.00", "1021.63"),  # 2000.00 per settlement, 1021.63 left of 3000.00
            ("500.00", "0.00", "350.00", "0.00"),
            ("1500.00", "1000.00", "350.00", "350.00"),
            ("0.00", "0.00", "0.00", "0.00"),
        ]]
    assert [(r.figures.ratio, r.policy_id, r.policy_version, r.year) for r in results][1] == (
        Decimal("0.65"), "test-ledger", 1, 2026)
    assert await calc.ledger(ref) == book.ledgers() == [
        {"year": 2026, "deductible_used": "1000.00", "committed": "3000.00"},
        {"year": 2027, "deductible_used": "1000.00", "committed": "350.00"}]

    records = await read_topic(calc.settings, ASSISTANCE_CALCULATED, expect=1_000_000, timeout=1)
    capped = next(r for r in records if str(results[3].settlement_id).encode() in r.value)
    assert capped.key.decode() == ref, "keyed by person_ref, so one person's events stay in order"
    envelope = orjson.loads(capped.value)
    assert envelope["schema_version"] == 2
    wire = envelope["data"]
    assert (wire["year"], wire["policy_version"]) == (2026, 1), "integers, not strings"
    assert (wire["figures"]["assistance"], wire["figures"]["amount_before_caps"], wire["figures"]["ratio"]) == (
        "1021.63", "3500.00", "0.70")
    assert wire["figures"]["per_settlement_cap"] == "2000.00" and wire["figures"]["cap_left"] == "1021.63"
    assert set(wire) == {"calculation_id", "settlement_id", "hospital_id", "category", "district_code",
                         "subdistrict_code", "visit_type", "hospital_level", "discharge_date", "year", "policy_id",
                         "policy_version", "figures", "hospital_settlement_id", "admission_date", "total_amount"}, (
        "each figure once, in `figures`; beside it only the settlement's facts the reviewer's case view shows")

    explained = await calc.calculation(results[3].settlement_id)
    assert explained["assistance"] == "1021.63" and explained["status"] == "calculated"
    assert (explained["year"], explained["policy_id"], explained["policy_version"]) == (2026, "test-ledger", 1)
    assert explained["figures"] == figures(results[3])
    assert any("per-settlement cap 2000.00 -> 2000.00" in line for line in explained["explanation"])


async def test_policy_admin_publishes_versions_by_region_and_period_and_roles_are_enforced(calc: Calc) -> None:
    region = "990200"
    first = {"policy_id": "test-periods", "version": 1, "region_code": region, "effective_from": "2026-01-01",
             "effective_to": "2026-06-30", "categories": {"low_income": {
                 "deductible": "0.00", "cap": "50000.00", "ratios": {**RATIOS, "inpatient": {"default": "0.50"}}}}}
    second = {**first, "version": 2, "effective_from": "2026-07-01", "effective_to": None,
              "categories": {"low_income": {"deductible": "0.00", "cap": "50000.00",
                                            "ratios": {**RATIOS, "inpatient": {"default": "0.90"}}}}}
    async with httpx.AsyncClient(base_url=calc.url) as anonymous, calc.client("policy_admin") as admin, \
            calc.client("clerk", district=region, subdistrict=f"{region}001") as clerk:
        assert (await anonymous.post("/v1/policies", json=first)).status_code == 401
        refused = await clerk.post("/v1/policies", json=first)
        assert refused.status_code == 403 and refused.json()["code"] == "forbidden_role"
        backwards = await admin.post("/v1/policies", json={**first, "effective_to": "2025-12-31"})
        assert backwards.status_code == 422 and backwards.json()["code"] == "invalid_policy"
        bad_ratio = await admin.post("/v1/policies", json={**first, "categories": {"low_income": {
            "deductible": "0.00", "cap": "1.00", "ratios": {**RATIOS, "inpatient": {"default": "1.50"}}}}})
        assert bad_ratio.status_code == 422 and bad_ratio.json()["field"].startswith("categories.low_income")
        assert (await admin.post("/v1/policies", json=first)).status_code == 201
        assert (await admin.post("/v1/policies", json=second)).status_code == 201
        again = await admin.post("/v1/policies", json={**second, "effective_from": "2026-08-01"})
        assert again.status_code == 409 and again.json()["code"] == "policy_version_exists"
        listed = (await clerk.get("/v1/policies")).json()
    mine = [p for p in listed if p["policy_id"] == "test-periods"]
    assert [(p["version"], p["effective_from"], p["effective_to"], p["published_by"]) for p in mine] == [
        (1, "2026-01-01", "2026-06-30", "policy_admin-test"), (2, "2026-07-01", None, "policy_admin-test")]
    assert any(p["policy_id"] == "yangpu-310110" for p in listed), "the demo policies are still there"

    ref = person()
    before_any = settlement(date(2025, 12, 31), "1000.00", "0.00")
    uncovered_region = settlement(date(2026, 3, 1), "1000.00", "0.00")
    spring, autumn = settlement(date(2026, 6, 30), "1000.00", "0.00"), settlement(date(2026, 7, 1), "1000.00", "0.00")
    await calc.send(ELIGIBILITY_DECIDED, eligible(before_any, region), ref)
    await calc.send(ELIGIBILITY_DECIDED, eligible(uncovered_region, "990300"), ref)
    for s in (spring, autumn):
        await calc.send(ELIGIBILITY_DECIDED, eligible(s, region), ref)
    first_half, second_half = await calc.calculated([spring, autumn])
    assert (first_half.policy_id, first_half.policy_version, first_half.figures.assistance) == (
        "test-periods", 1, Decimal("500.00"))
    assert (second_half.policy_version, second_half.figures.assistance) == (2, Decimal("900.00"))
    for s in (before_any, uncovered_region):
        found = await calc.calculation(s.settlement_id)
        assert (found["status"], found["assistance"], found["figures"], found["policy_version"]) == (
            "no_policy", "0.00", None, None)
    published = await calc.published(lambda e: e.data.get("settlement_id") in {
        str(before_any.settlement_id), str(uncovered_region.settlement_id)}, expect=0)
    assert published == [], "nothing to approve without a policy"


async def test_a_rejected_case_gives_its_share_back_once_and_later_settlements_are_not_recomputed(calc: Calc) -> None:
    ref, book = person(), RuleBook()
    s1, s2, s3 = (settlement(date(2026, 2, 1), "1500.00", "0.00"), settlement(date(2026, 3, 1), "6000.00", "0.00"),
                  settlement(date(2026, 4, 1), "4000.00", "0.00"))
    c1, c2, c3 = await calculate_all(calc, ref, [(s1, "0.70"), (s2, "0.70"), (s3, "0.70")], book)
    assert [c.figures.assistance for c in (c1, c2, c3)] == [Decimal("350.00"), Decimal("2000.00"), Decimal("650.00")]

    rejected = await calc.send(CASE_DECIDED, decided(c1, "rejected", "not_medically_necessary"), ref)
    await calc.resend(CASE_DECIDED, rejected)  # the same event delivered again
    await calc.send(CASE_DECIDED, decided(c1, "rejected", "not_medically_necessary"), ref)  # re-sent, new id
    await calc.send(CASE_DECIDED, decided(c2, "approved"), ref)  # same partition, after the rejections
    await calc.calculation(s2.settlement_id, until=lambda c: c["status"] == "approved")
    book.release(s1)
    released = await calc.calculation(s1.settlement_id)
    assert (released["status"], released["released"]) == ("rejected", True)
    assert await calc.ledger(ref) == book.ledgers() == [
        {"year": 2026, "deductible_used": "0.00", "committed": "2650.00"}], "given back once, not three times"

    s4 = settlement(date(2026, 5, 1), "1800.00", "0.00")
    [c4] = await calculate_all(calc, ref, [(s4, "0.70")], book)
    assert (c4.figures.deductible_applied, c4.figures.amount_before_caps, c4.figures.assistance) == (
        Decimal("1000.00"), Decimal("560.00"), Decimal("350.00")), "the released deductible and cap are used again"
    for s, amount in ((s2, "2000.00"), (s3, "650.00")):
        assert (await calc.calculation(s.settlement_id))["assistance"] == amount, "not recomputed"
    assert await calc.ledger(ref) == book.ledgers()


async def test_reversal_frees_the_ledger_before_payment_and_opens_a_recovery_after(calc: Calc) -> None:
    ref, book = person(), RuleBook()
    paid, unpaid = settlement(date(2026, 2, 1), "1500.00", "0.00"), settlement(date(2026, 3, 1), "1000.00", "0.00")
    c_paid, c_unpaid = await calculate_all(calc, ref, [(paid, "0.70"), (unpaid, "0.70")], book)
    case = decided(c_paid, "approved")
    await calc.send(CASE_DECIDED, case, ref)
    await calc.send(TRANSFER_SETTLED, TransferSettled(
        payment_id=uuid.uuid4(), case_id=case.case_id, calculation_id=c_paid.calculation_id,
        settlement_id=paid.settlement_id, status="settled", amount=c_paid.figures.assistance,
        bank_reference="BK1"), ref)
    await calc.calculation(paid.settlement_id, until=lambda c: c["status"] == "paid")

    await calc.send(ELIGIBILITY_DECIDED, reversal(unpaid), ref)
    await calc.send(ELIGIBILITY_DECIDED, reversal(paid), ref)
    await calc.send(ELIGIBILITY_DECIDED, reversal(paid), ref)  # the hospital's reversal, re-sent
    sentinel = settlement(date(2026, 4, 1), "100.00", "0.00")  # 70.00
    book.release(unpaid)
    await calculate_all(calc, ref, [(sentinel, "0.70")], book)  # after the reversals, on the same partition

    reversals = await calc.published(lambda e: e.event_type == "AssistanceReversed" and e.data["settlement_id"] in {
        str(paid.settlement_id), str(unpaid.settlement_id)}, expect=2)
    by_settlement = {r.settlement_id: r for r in (e.payload() for e in reversals)}  # type: ignore[attr-defined]
    assert len(reversals) == 2, "a repeated reversal publishes nothing new"
    before = by_settlement[unpaid.settlement_id]
    assert isinstance(before, AssistanceReversed)
    assert (before.released_assistance, before.recovery_id) == (Decimal("700.00"), None)
    after = by_settlement[paid.settlement_id]
    assert isinstance(after, AssistanceReversed)
    assert after.released_assistance == Decimal("0.00") and after.recovery_id is not None
    [opened] = [e.payload() for e in await calc.published(
        lambda e: e.event_type == "RecoveryOpened" and e.data["settlement_id"] == str(paid.settlement_id), 1)]
    assert isinstance(opened, RecoveryOpened)
    assert (opened.recovery_id, opened.calculation_id, opened.amount, opened.district_code) == (
        after.recovery_id, c_paid.calculation_id, Decimal("350.00"), REGION), "announced once, for approval's case"
    assert await calc.ledger(ref) == book.ledgers() == [
        {"year": 2026, "deductible_used": "1000.00", "committed": "420.00"}], "paid money stays committed"
    for s, released in ((unpaid, True), (paid, False)):
        found = await calc.calculation(s.settlement_id)
        assert (found["status"], found["released"]) == ("reversed", released)

    async with calc.client("district_reviewer", district=REGION) as reviewer, \
            calc.client("district_reviewer", district="990200") as elsewhere, \
            calc.client("clerk", district=REGION, subdistrict=SUBDISTRICT) as clerk:
        recoveries = [r for r in (await reviewer.get("/v1/recoveries")).json()
                      if r["settlement_id"] == str(paid.settlement_id)]
        assert [(r["recovery_id"], r["amount"], r["district_code"], r["status"]) for r in recoveries] == [
            (str(after.recovery_id), "350.00", REGION, "open")]
        assert all(r["settlement_id"] != str(paid.settlement_id)
                   for r in (await elsewhere.get("/v1/recoveries")).json())
        assert (await clerk.get("/v1/recoveries")).status_code == 403


async def test_an_eligibility_decision_delivered_twice_is_calculated_once(calc: Calc) -> None:
    ref, book = person(), RuleBook()
    first, sentinel = settlement(date(2026, 2, 1), "2000.00", "0.00"), settlement(date(2026, 3, 1), "500.00", "0.00")
    envelope = Envelope.wrap(eligible(first), person_ref=ref, producer="test")
    await calc.resend(ELIGIBILITY_DECIDED, envelope)
    await calc.resend(ELIGIBILITY_DECIDED, envelope)  # redelivered by the broker
    await calc.send(ELIGIBILITY_DECIDED, eligible(first), ref)  # the same decision published again, new event id
    await calc.send(ELIGIBILITY_DECIDED, eligible(sentinel), ref)
    book.charge(first, "0.70")
    [c_sentinel] = await calc.calculated([sentinel])
    assert figures(c_sentinel) == book.charge(sentinel, "0.70")
    assert c_sentinel.figures.committed_before == Decimal("700.00"), "the first settlement was charged once"
    found = await calc.published(lambda e: e.data.get("settlement_id") == str(first.settlement_id), expect=1)
    assert len(found) == 1
    assert await calc.ledger(ref) == book.ledgers()


async def test_a_reversal_and_the_next_settlement_in_one_poll_are_applied_in_the_persons_order(calc: Calc) -> None:
    ref, book = person(), RuleBook()
    old = settlement(date(2026, 2, 1), "3000.00", "0.00")
    [c_old] = await calculate_all(calc, ref, [(old, "0.70")], book)
    assert (c_old.figures.deductible_applied, c_old.figures.assistance) == (Decimal("1000.00"), Decimal("1400.00"))

    new, later = settlement(date(2026, 3, 1), "3000.00", "0.00"), settlement(date(2026, 4, 1), "200.00", "0.00")
    await calc.send_in_one_poll(ELIGIBILITY_DECIDED, [
        Envelope.wrap(reversal(old), person_ref=ref, producer="test"),  # the hospital voided the old one first
        Envelope.wrap(eligible(new), person_ref=ref, producer="test"),
        Envelope.wrap(eligible(later), person_ref=ref, producer="test"),
    ])
    book.release(old)
    c_new, c_later = await calc.calculated([new, later])
    assert figures(c_new) == book.charge(new, "0.70")
    assert (c_new.figures.deductible_applied, c_new.figures.assistance) == (Decimal("1000.00"), Decimal("1400.00")), \
        "the reversal came first: its deductible and assistance were back before the new settlement"
    assert figures(c_later) == book.charge(later, "0.70")
    assert await calc.ledger(ref) == book.ledgers() == [
        {"year": 2026, "deductible_used": "1000.00", "committed": "1540.00"}]


async def test_duplicates_in_one_poll_are_applied_once_without_failing_the_batch(calc: Calc) -> None:
    ref, book = person(), RuleBook()
    first, second = settlement(date(2026, 2, 1), "2500.00", "0.00"), settlement(date(2026, 3, 1), "400.00", "0.00")
    envelope = Envelope.wrap(eligible(first), person_ref=ref, producer="test")
    retries_before = await handler_retries(calc)
    await calc.send_in_one_poll(ELIGIBILITY_DECIDED, [
        envelope, envelope,  # the same event twice
        Envelope.wrap(eligible(first), person_ref=ref, producer="test"),  # the same decision under a new id
        Envelope.wrap(eligible(second), person_ref=ref, producer="test"),
    ])
    c_first, c_second = await calc.calculated([first, second])
    assert figures(c_first) == book.charge(first, "0.70") and figures(c_second) == book.charge(second, "0.70")
    assert len(await calc.published(lambda e: e.data.get("settlement_id") == str(first.settlement_id), 1)) == 1
    assert await calc.ledger(ref) == book.ledgers() == [
        {"year": 2026, "deductible_used": "1000.00", "committed": "1330.00"}]
    assert await handler_retries(calc) == retries_before, "a duplicate is skipped, not a reason to retry the batch"


async def handler_retries(calc: Calc) -> float:
    async with httpx.AsyncClient(base_url=calc.url) as http:
        text = (await http.get("/metrics")).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("medassist_handler_retries_total{"))


async def test_a_settlement_waiting_for_a_policy_is_calculated_when_one_is_published(calc: Calc) -> None:
    ref, region = person(), "990400"
    waiting = settlement(date(2026, 3, 1), "2500.00", "0.00")
    outside = settlement(date(2025, 6, 1), "2500.00", "0.00")  # before the policy's period: stays waiting
    for s in (waiting, outside):
        await calc.send(ELIGIBILITY_DECIDED, eligible(s, region), ref)
    for s in (waiting, outside):
        assert (await calc.calculation(s.settlement_id))["status"] == "no_policy"

    late = {**POLICY, "policy_id": f"late-{region}", "region_code": region}
    async with calc.client("policy_admin") as admin:
        published = await admin.post("/v1/policies", json=late)
        assert published.status_code == 201, published.text
        assert published.json()["waiting_calculated"] == 1
        again = await admin.post("/v1/policies", json={**late, "version": 2})
        assert again.json()["waiting_calculated"] == 0, "a settlement is calculated once"

    [result] = await calc.calculated([waiting])
    # base 2500.00, the whole 1000.00 deductible, 1500.00 x 0.70 = 1050.00, under both caps
    assert (result.policy_id, result.figures.deductible_applied, result.figures.assistance) == (
        f"late-{region}", Decimal("1000.00"), Decimal("1050.00"))
    assert (await calc.calculation(waiting.settlement_id))["status"] == "calculated"
    assert (await calc.calculation(outside.settlement_id))["status"] == "no_policy"
    [ledger] = [row for row in await calc.ledger(ref) if row["year"] == 2026]
    assert (ledger["deductible_used"], ledger["committed"]) == ("1000.00", "1050.00")


async def test_a_persons_ledger_exists_only_inside_the_callers_area(calc: Calc) -> None:
    ref = person()
    await calculate_all(calc, ref, [(settlement(date(2026, 7, 1), "1800.00", "300.00"), "0.70")], RuleBook())
    path, unknown = f"/v1/ledgers/{ref}", f"/v1/ledgers/{person()}"
    inside = [calc.client("clerk", REGION, SUBDISTRICT), calc.client("district_reviewer", REGION),
              calc.client("ops"), calc.client("policy_admin")]
    outside = [calc.client("clerk", REGION, REGION + "002"), calc.client("clerk", "990200", "990200001"),
               calc.client("district_reviewer", "990200")]
    for http in inside:
        async with http:
            response = await http.get(path)
            assert response.status_code == 200 and response.json()[0]["committed"] == "350.00", response.text
    for http in outside:
        async with http:
            response, nobody = await http.get(path), await http.get(unknown)
            assert response.status_code == 404 and response.json()["code"] == "person_not_found", response.text
            assert response.json() == nobody.json(), "another area's resident is indistinguishable from nobody"


async def test_a_reversal_that_overtook_the_payment_opens_a_recovery_for_the_money_that_left(calc: Calc) -> None:
    ref, book = person(), RuleBook()
    s = settlement(date(2026, 2, 1), "1500.00", "0.00")
    [c] = await calculate_all(calc, ref, [(s, "0.70")], book)
    case = decided(c, "approved")
    await calc.send(CASE_DECIDED, case, ref)
    await calc.calculation(s.settlement_id, until=lambda x: x["status"] == "approved")
    await calc.send(ELIGIBILITY_DECIDED, reversal(s), ref)  # before the bank's answer
    await calc.calculation(s.settlement_id, until=lambda x: x["released"])
    transfer = TransferSettled(payment_id=uuid.uuid4(), case_id=case.case_id, calculation_id=c.calculation_id,
                               settlement_id=s.settlement_id, status="settled", amount=c.figures.assistance,
                               bank_reference="BK-RACE")
    await calc.send(TRANSFER_SETTLED, transfer, ref)
    await calc.send(TRANSFER_SETTLED, transfer, ref)  # the bank's word, delivered again under a new id

    [opened] = [e.payload() for e in await calc.published(
        lambda e: e.event_type == "RecoveryOpened" and e.data["settlement_id"] == str(s.settlement_id), 1)]
    assert isinstance(opened, RecoveryOpened) and opened.amount == Decimal("350.00")
    [reversed_event] = [e.payload() for e in await calc.published(
        lambda e: e.event_type == "AssistanceReversed" and e.data["settlement_id"] == str(s.settlement_id), 1)]
    assert reversed_event.recovery_id is None, "nothing was paid when the reversal came"  # type: ignore[attr-defined]
    async with calc.client("ops") as ops:
        mine = [r for r in (await ops.get("/v1/recoveries")).json() if r["settlement_id"] == str(s.settlement_id)]
    assert [(r["recovery_id"], r["amount"]) for r in mine] == [(str(opened.recovery_id), "350.00")]
    await asyncio.sleep(2)  # a second RecoveryOpened would have been published by now
    assert len(await calc.published(lambda e: e.event_type == "RecoveryOpened"
                                    and e.data["settlement_id"] == str(s.settlement_id), 1)) == 1


async def test_every_policy_version_is_announced_once_with_its_consent_lookback(calc: Calc) -> None:
    region = "990600"
    first = {**POLICY, "policy_id": f"announced-{region}", "region_code": region}
    second = {**first, "version": 2, "effective_from": "2026-07-01", "consent_lookback": "none"}
    async with calc.client("policy_admin") as admin:
        assert (await admin.post("/v1/policies", json=first)).status_code == 201
        assert (await admin.post("/v1/policies", json=second)).status_code == 201
        assert (await admin.post("/v1/policies", json={**second, "consent_lookback": "sometimes"})).status_code == 422
        listed = [p for p in (await admin.get("/v1/policies")).json() if p["policy_id"] == first["policy_id"]]
    assert [p["consent_lookback"] for p in listed] == ["calendar_year", "none"], "the default is calendar_year"

    deadline = asyncio.get_running_loop().time() + 60
    while True:
        records = await read_topic(calc.settings, POLICY_PUBLISHED, expect=1_000_000, timeout=1)
        mine = [(r.key.decode(), Envelope.from_bytes(r.value)) for r in records]
        mine = [(k, e) for k, e in mine if e.data["policy_id"] == first["policy_id"]]
        if len(mine) >= 2 or asyncio.get_running_loop().time() > deadline:
            break
    assert [(k, e.payload().policy_version, e.payload().consent_lookback, str(e.payload().effective_from))  # type: ignore[attr-defined]
            for k, e in mine] == [(region_key(region), 1, "calendar_year", "2026-01-01"),
                                  (region_key(region), 2, "none", "2026-07-01")], "in order, keyed by region"
    seeded = {e.data["policy_id"] for e in (Envelope.from_bytes(r.value) for r in records)}
    assert {"yangpu-310110", "putuo-310107", "test-ledger"} <= seeded, "the seeded and earlier versions too"
