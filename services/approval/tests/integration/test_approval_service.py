"""Approval as its own process: queues per sub-district, clerk and district review, batch approval, listing,
area confinement, and an audit trail the database itself keeps append-only."""

import asyncio
import itertools
import secrets
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import asyncpg
import httpx
import pytest
from approval.bootstrap import MIGRATIONS
from approval.config import ApprovalSettings
from sqlalchemy.engine import make_url

from shared.contracts.envelope import Envelope
from shared.contracts.events import (
    AssistanceCalculated,
    AssistanceFigures,
    AssistanceReversed,
    CaseDecided,
    RecoveryOpened,
    TransferSettled,
)
from shared.contracts.topics import ASSISTANCE_CALCULATED, CASE_DECIDED, TRANSFER_SETTLED
from shared.messaging.kafka import KafkaProducer
from shared.testing import (
    ServiceUnderTest,
    read_topic,
    start_service,
    unique_prefix,
)

pytestmark = pytest.mark.integration
DISTRICT, OTHER_DISTRICT = "990400", "990500"
MAX_BATCH = 5
SUBDISTRICTS = itertools.count(1)


class Approval(ServiceUnderTest):
    def clerk(self, subdistrict: str) -> httpx.AsyncClient:
        return self.client("clerk", subdistrict[:6], subdistrict)

    def reviewer(self, district: str = DISTRICT) -> httpx.AsyncClient:
        return self.client("district_reviewer", district)

    async def calculated(self, calculations: list[AssistanceCalculated], ref: str) -> None:
        for calc in calculations:
            await self.send(ASSISTANCE_CALCULATED, calc, ref)

    async def open_cases(self, calculations: list[AssistanceCalculated], ref: str | None = None
                         ) -> list[dict[str, Any]]:
        """Send the calculations and wait until each has its case; the cases in the calculations' order."""
        await self.calculated(calculations, ref or person())
        return await self.cases_of(calculations)

    async def cases_of(self, calculations: list[AssistanceCalculated], timeout: float = 60) -> list[dict[str, Any]]:
        wanted = {str(c.calculation_id) for c in calculations}
        deadline = asyncio.get_running_loop().time() + timeout
        async with self.client("ops") as ops:
            while True:
                found = {c["calculation_id"]: c for c in await every_page(ops) if c["calculation_id"] in wanted}
                if len(found) == len(wanted):
                    return [found[str(c.calculation_id)] for c in calculations]
                if asyncio.get_running_loop().time() > deadline:
                    raise AssertionError(f"{len(wanted) - len(found)} of {len(wanted)} cases never opened")
                await asyncio.sleep(0.2)

    async def decisions(self, case_ids: set[str], expect: int, timeout: float = 60) -> list[tuple[str, CaseDecided]]:
        """(Kafka key, CaseDecided) published for these cases, once at least `expect` are there."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            records = await read_topic(self.settings, CASE_DECIDED, expect=1_000_000, timeout=1)
            found = [(r.key.decode(), Envelope.from_bytes(r.value).payload()) for r in records]
            mine = [(k, d) for k, d in found if str(d.case_id) in case_ids]  # type: ignore[attr-defined]
            if len(mine) >= expect:
                return mine  # type: ignore[return-value]
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"expected {expect} decisions, got {len(mine)}")


async def every_page(client: httpx.AsyncClient, **params: Any) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    while True:
        response = await client.get("/v1/cases", params={**params, "limit": 500, "offset": len(items)})
        assert response.status_code == 200, response.text
        page = response.json()
        items += page["items"]
        if len(items) >= page["total"] or not page["items"]:
            return items


@pytest.fixture(scope="module")
async def approval() -> AsyncIterator[Approval]:
    settings = ApprovalSettings(topic_prefix=unique_prefix("appr"), database_name="test_approval",
                                max_batch_approve=MAX_BATCH)
    process = await start_service("approval", settings, MIGRATIONS, {"MAX_BATCH_APPROVE": str(MAX_BATCH)})
    producer = KafkaProducer(settings)
    try:
        await producer.start()
        yield Approval(settings, process.url, producer)
    finally:
        await producer.stop()
        process.stop()


def person() -> str:
    return secrets.token_hex(32)


def subdistrict(district: str = DISTRICT) -> str:
    """A sub-district of its own for each test, so each test's queues hold only its cases."""
    return f"{district}{next(SUBDISTRICTS):03d}"


def calculation(sub: str, amount: str, hospital: str = "H001", discharge: date = date(2026, 3, 1)
                ) -> AssistanceCalculated:
    money, zero = Decimal(amount), Decimal("0.00")
    return AssistanceCalculated(
        calculation_id=uuid.uuid4(), settlement_id=uuid.uuid4(), hospital_id=hospital, category="subsistence",
        district_code=sub[:6], subdistrict_code=sub, visit_type="inpatient", hospital_level=2,
        hospital_settlement_id=f"S-{uuid.uuid4().hex[:8]}", admission_date=discharge - timedelta(days=5),
        discharge_date=discharge, year=discharge.year, policy_id="test-policy", policy_version=3,
        total_amount=money + Decimal("800.00"),
        figures=AssistanceFigures(
            policy_scope_amount=money + Decimal("500.00"), basic_insurance_paid=Decimal("500.00"),
            critical_illness_paid=zero, base=money, deductible=zero, deductible_used_before=zero,
            deductible_left=zero, deductible_applied=zero, ratio=Decimal("1.00"), amount_before_caps=money,
            per_settlement_cap=None, amount_after_settlement_cap=money, cap=Decimal("60000.00"),
            committed_before=zero, cap_left=Decimal("60000.00"), assistance=money))


def audit_trail(case: dict[str, Any]) -> list[tuple[Any, ...]]:
    return [(a["actor"], a["role"], a["action"], a["from_state"], a["to_state"], a["reason"], a["comment"])
            for a in case["audit"]]


async def test_cases_open_once_in_their_own_subdistricts_queue(approval: Approval) -> None:
    sub_a, sub_b = subdistrict(), subdistrict()
    ref = person()
    a1, a2, b1 = calculation(sub_a, "120.50"), calculation(sub_a, "80.00"), calculation(sub_b, "999.99")
    nothing = calculation(sub_a, "0.00")
    first = Envelope.wrap(a1, person_ref=ref, producer="test")
    for _ in range(2):  # the same event delivered twice
        await approval.producer.send_and_wait(approval.settings.topic(ASSISTANCE_CALCULATED), first.to_bytes(), key=ref)
    await approval.calculated([a1, nothing, a2, b1], ref)  # a1 again under a new event id; nothing to pay opens nothing
    case_a1, case_a2, case_b1 = await approval.cases_of([a1, a2, b1])

    async with approval.clerk(sub_a) as clerk_a, approval.clerk(sub_b) as clerk_b, approval.reviewer() as reviewer, \
            approval.client("ops") as ops:
        queue_a = (await clerk_a.get("/v1/cases")).json()
        assert queue_a["total"] == 2, "one case per calculation, none for nothing to pay"
        assert {c["case_id"] for c in queue_a["items"]} == {case_a1["case_id"], case_a2["case_id"]}
        assert [c["case_id"] for c in (await clerk_b.get("/v1/cases")).json()["items"]] == [case_b1["case_id"]]
        assert all(c["subdistrict_code"] != sub_a for c in await every_page(reviewer)), \
            "the district's queue holds what clerks passed on"
        depth = {(q["subdistrict_code"], q["state"]): q["count"] for q in (await ops.get("/v1/queues")).json()}
        assert depth[(sub_a, "awaiting_subdistrict")] == 2 and depth[(sub_b, "awaiting_subdistrict")] == 1
        detail = (await clerk_a.get(f"/v1/cases/{case_a1['case_id']}")).json()
    assert (detail["state"], detail["amount"], detail["settlement_id"]) == (
        "awaiting_subdistrict", "120.50", str(a1.settlement_id))
    assert detail["calculation"] == {"year": 2026, "policy_id": "test-policy", "policy_version": 3,
                                     "figures": a1.figures.model_dump(mode="json")}
    assert detail["calculation"]["figures"]["per_settlement_cap"] is None, "an absent cap is null, not \"\""
    assert audit_trail(detail) == [("system", "system", "open", None, "awaiting_subdistrict", None, None)]


async def test_clerk_then_district_approval_publishes_the_decision_once(approval: Approval) -> None:
    sub, ref = subdistrict(), person()
    calc = calculation(sub, "1234.56")
    [case] = await approval.open_cases([calc], ref)
    path = f"/v1/cases/{case['case_id']}"
    async with approval.client("clerk", DISTRICT, sub, subject="clerk-wang") as clerk, \
            approval.client("district_reviewer", DISTRICT, subject="reviewer-li") as reviewer:
        early = await reviewer.post(f"{path}/approve", json={})
        assert early.status_code == 409 and early.json()["code"] == "illegal_transition"
        passed = await clerk.post(f"{path}/approve", json={"comment": "invoices checked"})
        assert passed.status_code == 200 and passed.json()["state"] == "awaiting_district"
        assert (await clerk.post(f"{path}/approve", json={})).json()["code"] == "illegal_transition"
        assert case["case_id"] in {c["case_id"] for c in await every_page(reviewer)}, "now in the district's queue"
        approved = await reviewer.post(f"{path}/approve", json={})
        assert approved.status_code == 200 and approved.json()["state"] == "approved"
        assert (await reviewer.post(f"{path}/approve", json={})).status_code == 409
        detail = (await reviewer.get(path)).json()
    assert audit_trail(detail) == [
        ("system", "system", "open", None, "awaiting_subdistrict", None, None),
        ("clerk-wang", "clerk", "approve", "awaiting_subdistrict", "awaiting_district", None, "invoices checked"),
        ("reviewer-li", "district_reviewer", "approve", "awaiting_district", "approved", None, None)]

    [(key, decision)] = await approval.decisions({case["case_id"]}, 1)
    assert key == ref
    assert (decision.decision, decision.reason_code, decision.amount, decision.calculation_id,
            decision.settlement_id, decision.district_code, decision.subdistrict_code) == (
        "approved", None, Decimal("1234.56"), calc.calculation_id, calc.settlement_id, DISTRICT, sub)


async def test_a_rejection_needs_a_reason_and_is_published_with_it(approval: Approval) -> None:
    sub = subdistrict()
    by_clerk, by_reviewer = await approval.open_cases([calculation(sub, "50.00"), calculation(sub, "60.00")])
    async with approval.clerk(sub) as clerk, approval.reviewer() as reviewer:
        path = f"/v1/cases/{by_clerk['case_id']}/reject"
        missing = await clerk.post(path, json={})
        assert missing.status_code == 422 and missing.json()["field"] == "reason"
        unknown = await clerk.post(path, json={"reason": "because"})
        assert unknown.status_code == 422 and unknown.json()["code"] == "invalid_input"
        other = await clerk.post(path, json={"reason": "other"})
        assert other.status_code == 422 and other.json()["code"] == "reason_required"
        rejected = await clerk.post(path, json={"reason": "duplicate_claim", "comment": "paid in January"})
        assert rejected.status_code == 200 and rejected.json()["state"] == "rejected"
        assert (await clerk.post(f"/v1/cases/{by_clerk['case_id']}/approve", json={})).status_code == 409

        assert (await clerk.post(f"/v1/cases/{by_reviewer['case_id']}/approve", json={})).status_code == 200
        refused = await reviewer.post(f"/v1/cases/{by_reviewer['case_id']}/reject",
                                      json={"reason": "not_medically_necessary"})
        assert refused.status_code == 200 and refused.json()["state"] == "rejected"
        detail = (await clerk.get(f"/v1/cases/{by_clerk['case_id']}")).json()
    assert audit_trail(detail)[-1][2:] == ("reject", "awaiting_subdistrict", "rejected", "duplicate_claim",
                                           "paid in January")
    decisions = await approval.decisions({by_clerk["case_id"], by_reviewer["case_id"]}, 2)
    assert sorted((str(d.case_id), d.decision, d.reason_code, d.amount) for _, d in decisions) == sorted([
        (by_clerk["case_id"], "rejected", "duplicate_claim", Decimal("50.00")),
        (by_reviewer["case_id"], "rejected", "not_medically_necessary", Decimal("60.00"))])


async def test_the_district_reviewer_sends_a_case_back_saying_why(approval: Approval) -> None:
    sub = subdistrict()
    [case] = await approval.open_cases([calculation(sub, "300.00")])
    path = f"/v1/cases/{case['case_id']}"
    async with approval.clerk(sub) as clerk, approval.reviewer() as reviewer:
        assert (await clerk.post(f"{path}/approve", json={})).status_code == 200
        assert (await reviewer.post(f"{path}/send-back", json={})).status_code == 422
        assert (await reviewer.post(f"{path}/send-back", json={"comment": ""})).status_code == 422
        clerk_tries = await clerk.post(f"{path}/send-back", json={"comment": "mine"})
        assert clerk_tries.status_code == 403 and clerk_tries.json()["code"] == "forbidden_role"
        back = await reviewer.post(f"{path}/send-back", json={"comment": "the discharge date looks wrong"})
        assert back.status_code == 200 and back.json()["state"] == "awaiting_subdistrict"
        assert [c["case_id"] for c in (await clerk.get("/v1/cases")).json()["items"]] == [case["case_id"]]
        assert (await clerk.post(f"{path}/approve", json={"comment": "date confirmed"})).status_code == 200
        assert (await reviewer.post(f"{path}/approve", json={})).json()["state"] == "approved"
        detail = (await clerk.get(path)).json()
    assert [a[2:5] for a in audit_trail(detail)] == [
        ("open", None, "awaiting_subdistrict"), ("approve", "awaiting_subdistrict", "awaiting_district"),
        ("send_back", "awaiting_district", "awaiting_subdistrict"),
        ("approve", "awaiting_subdistrict", "awaiting_district"), ("approve", "awaiting_district", "approved")]
    assert audit_trail(detail)[2][6] == "the discharge date looks wrong"
    # Had sending back published anything, it would be ahead of the approval on the case's partition.
    [(_, decision)] = await approval.decisions({case["case_id"]}, 1)
    assert decision.decision == "approved", "sending back decides nothing"


async def test_a_clerk_approves_a_batch_with_a_result_per_case(approval: Approval) -> None:
    sub, elsewhere = subdistrict(), subdistrict()
    c1, c2, c3, foreign = await approval.open_cases([calculation(sub, "10.00"), calculation(sub, "20.00"),
                                                     calculation(sub, "30.00"), calculation(elsewhere, "40.00")])
    unknown = str(uuid.uuid4())
    async with approval.clerk(sub) as clerk, approval.reviewer() as reviewer:
        assert (await clerk.post(f"/v1/cases/{c3['case_id']}/approve", json={})).status_code == 200
        ids = [c1["case_id"], c2["case_id"], c1["case_id"], c3["case_id"], foreign["case_id"], unknown]
        response = await clerk.post("/v1/cases:batch-approve", json={"case_ids": ids[:5], "comment": "batch"})
        assert response.status_code == 200, response.text
        result = response.json()
        too_many = await clerk.post("/v1/cases:batch-approve",
                                    json={"case_ids": [str(uuid.uuid4()) for _ in range(MAX_BATCH + 1)]})
        assert too_many.status_code == 413 and too_many.json()["code"] == "batch_too_large"
        assert (await clerk.post("/v1/cases:batch-approve", json={"case_ids": []})).status_code == 422
        assert (await reviewer.post("/v1/cases:batch-approve", json={"case_ids": [c1["case_id"]]})).status_code == 403
        with_unknown = (await clerk.post("/v1/cases:batch-approve", json={"case_ids": [unknown]})).json()
        states = {c["case_id"]: c["state"] for c in await every_page(clerk, state="awaiting_district")}
    assert (result["approved"], result["failed"]) == (2, 2)
    assert [(r["case_id"], r["ok"], r.get("state"), r.get("code")) for r in result["results"]] == [
        (c1["case_id"], True, "awaiting_district", None), (c2["case_id"], True, "awaiting_district", None),
        (c3["case_id"], False, None, "illegal_transition"), (foreign["case_id"], False, None, "case_not_found")]
    assert with_unknown["results"] == [{"case_id": unknown, "ok": False, "code": "case_not_found",
                                        "message": "no such case in your area"}]
    assert states == {c1["case_id"]: "awaiting_district", c2["case_id"]: "awaiting_district",
                      c3["case_id"]: "awaiting_district"}
    async with approval.clerk(elsewhere) as other_clerk:
        assert (await other_clerk.get(f"/v1/cases/{foreign['case_id']}")).json()["state"] == "awaiting_subdistrict"


async def test_listing_filters_and_pages(approval: Approval) -> None:
    sub = subdistrict()
    calcs = [calculation(sub, f"{i + 1}.00", hospital="H002" if i % 3 == 0 else "H001",
                         discharge=date(2026, 3, 1) + timedelta(days=i)) for i in range(7)]
    cases = await approval.open_cases(calcs)
    all_ids = {c["case_id"] for c in cases}
    async with approval.clerk(sub) as clerk, approval.reviewer() as reviewer, approval.client("ops") as ops:
        pages = [(await clerk.get("/v1/cases", params={"limit": 3, "offset": o})).json() for o in (0, 3, 6, 9)]
        assert [(p["total"], p["limit"], p["offset"], len(p["items"])) for p in pages] == [
            (7, 3, 0, 3), (7, 3, 3, 3), (7, 3, 6, 1), (7, 3, 9, 0)]
        listed = [c for p in pages for c in p["items"]]
        assert len(listed) == 7 and {c["case_id"] for c in listed} == all_ids, "no case twice, none missing"
        assert listed == sorted(listed, key=lambda c: (c["created_at"], c["case_id"])), "oldest first, stable"

        async def total(client: httpx.AsyncClient, **params: Any) -> int:
            response = await client.get("/v1/cases", params=params)
            assert response.status_code == 200, response.text
            return response.json()["total"]  # type: ignore[no-any-return]

        by_hospital = sum(c.hospital_id == "H002" for c in calcs)
        assert await total(clerk, hospital_id="H002") == by_hospital == 3
        in_range = sum(date(2026, 3, 3) <= c.discharge_date <= date(2026, 3, 5) for c in calcs)
        assert await total(clerk, discharged_from="2026-03-03", discharged_to="2026-03-05") == in_range == 3
        assert await total(clerk, hospital_id="H002", discharged_from="2026-03-04") == sum(
            c.hospital_id == "H002" and c.discharge_date >= date(2026, 3, 4) for c in calcs) == 2
        assert await total(clerk, state="approved") == 0
        assert await total(reviewer, state="awaiting_subdistrict", subdistrict_code=sub) == 7
        assert await total(reviewer, subdistrict_code=sub) == 0, "a reviewer's own queue is awaiting_district"
        assert await total(ops, subdistrict_code=sub, hospital_id="H001") == 4
        for bad in ({"limit": 0}, {"limit": 501}, {"offset": -1}, {"state": "pending"},
                    {"discharged_from": "March"}):
            response = await clerk.get("/v1/cases", params=bad)
            assert response.status_code == 422 and response.json()["code"] == "invalid_input", bad


async def test_staff_outside_the_cases_area_are_refused(approval: Approval) -> None:
    sub, neighbour = subdistrict(), subdistrict()
    [case] = await approval.open_cases([calculation(sub, "77.70")])
    path = f"/v1/cases/{case['case_id']}"
    async with approval.clerk(neighbour) as other_clerk, approval.reviewer(OTHER_DISTRICT) as other_reviewer, \
            approval.client("registry_officer") as officer, approval.clerk(sub) as clerk:
        for response in (await other_clerk.get(path), await other_clerk.post(f"{path}/approve", json={}),
                         await other_clerk.post(f"{path}/reject", json={"reason": "data_error"})):
            assert response.status_code == 404 and response.json()["code"] == "case_not_found"
        assert (await other_clerk.get("/v1/cases", params={"subdistrict_code": sub})).json()["total"] == 0
        assert (await clerk.post(f"{path}/approve", json={})).status_code == 200
        for response in (await other_reviewer.get(path), await other_reviewer.post(f"{path}/approve", json={}),
                         await other_reviewer.post(f"{path}/send-back", json={"comment": "not mine"})):
            assert response.status_code == 404 and response.json()["code"] == "case_not_found"
        their_queue = await every_page(other_reviewer, state="awaiting_district")
        assert case["case_id"] not in {c["case_id"] for c in their_queue}
        assert (await officer.get("/v1/cases")).status_code == 403
        async with httpx.AsyncClient(base_url=approval.url) as anonymous:
            assert (await anonymous.get("/v1/cases")).status_code == 401
        detail = (await clerk.get(path)).json()
    assert detail["state"] == "awaiting_district"
    assert [a[0] for a in audit_trail(detail)] == ["system", f"clerk-{sub}"], "a refused action leaves no trace"


async def test_the_audit_trail_is_append_only_for_the_services_own_database_role(approval: Approval) -> None:
    sub = subdistrict()
    [case] = await approval.open_cases([calculation(sub, "15.00")])
    async with approval.clerk(sub) as clerk:
        assert (await clerk.post(f"/v1/cases/{case['case_id']}/reject", json={"reason": "data_error"})).status_code \
            == 200
    url = make_url(approval.settings.database_url)  # the URL the service connects with, so the same role
    conn = await asyncpg.connect(host=url.host, port=url.port, user=url.username, password=url.password,
                                 database=url.database)
    try:
        case_id = uuid.UUID(case["case_id"])
        before = await conn.fetch("SELECT * FROM case_audit WHERE case_id = $1 ORDER BY id", case_id)
        assert [r["action"] for r in before] == ["open", "reject"]
        for statement in ("UPDATE case_audit SET comment = 'rewritten' WHERE case_id = $1",
                          "UPDATE case_audit SET to_state = 'approved' WHERE id = (SELECT max(id) FROM case_audit "
                          "WHERE case_id = $1)",
                          "DELETE FROM case_audit WHERE case_id = $1"):
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await conn.execute(statement, case_id)
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.execute("TRUNCATE case_audit")
        appended = await conn.fetchval(
            "INSERT INTO case_audit (case_id, actor, role, action, from_state, to_state) "
            "VALUES ($1, 'probe', 'clerk', 'approve', 'awaiting_subdistrict', 'awaiting_district') RETURNING id",
            uuid.uuid4())
        assert appended > before[-1]["id"], "appending is what the trail is for"
        after = await conn.fetch("SELECT * FROM case_audit WHERE case_id = $1 ORDER BY id", case_id)
        assert [dict(r) for r in after] == [dict(r) for r in before], "nothing was changed or removed"
        assert await conn.fetchval("SELECT count(*) FROM case_audit") > len(before)
    finally:
        await conn.close()


async def test_whoever_approved_as_clerk_never_approves_the_same_case_as_reviewer(approval: Approval) -> None:
    sub = subdistrict()
    [case, other] = await approval.open_cases([calculation(sub, "700.00"), calculation(sub, "80.00")])
    path = f"/v1/cases/{case['case_id']}/approve"
    async with approval.client("clerk", DISTRICT, sub, subject="staff-zhang") as as_clerk, \
            approval.client("district_reviewer", DISTRICT, subject="staff-zhang") as as_reviewer, \
            approval.client("district_reviewer", DISTRICT, subject="reviewer-zhao") as second:
        assert (await as_clerk.post(path, json={})).json()["state"] == "awaiting_district"
        refused = await as_reviewer.post(path, json={"comment": "looks right to me"})
        assert refused.status_code == 403, refused.text
        assert refused.json()["code"] == "four_eyes_required"
        assert (await as_reviewer.get(f"/v1/cases/{case['case_id']}")).json()["state"] == "awaiting_district"
        # the rule is about the case, not the person: a case someone else passed on is theirs to approve
        assert (await approval.clerk(sub).post(f"/v1/cases/{other['case_id']}/approve", json={})).status_code == 200
        assert (await as_reviewer.post(f"/v1/cases/{other['case_id']}/approve", json={})).status_code == 200
        approved = await second.post(path, json={})
        assert approved.status_code == 200 and approved.json()["state"] == "approved"
        detail = (await second.get(f"/v1/cases/{case['case_id']}")).json()
    assert [(a["actor"], a["role"], a["action"]) for a in detail["audit"]] == [
        ("system", "system", "open"), ("staff-zhang", "clerk", "approve"),
        ("reviewer-zhao", "district_reviewer", "approve")]


def settled(case: dict[str, Any], calc: AssistanceCalculated) -> TransferSettled:
    return TransferSettled(payment_id=uuid.uuid4(), case_id=uuid.UUID(case["case_id"]),
                           calculation_id=calc.calculation_id, settlement_id=calc.settlement_id, status="settled",
                           amount=calc.figures.assistance, bank_reference=f"BK-{uuid.uuid4().hex[:8]}")


def reversed_(calc: AssistanceCalculated, recovery_id: uuid.UUID | None) -> AssistanceReversed:
    released = Decimal("0.00") if recovery_id else calc.figures.assistance
    return AssistanceReversed(calculation_id=calc.calculation_id, settlement_id=calc.settlement_id,
                              released_assistance=released, recovery_id=recovery_id)


def recovery(calc: AssistanceCalculated, recovery_id: uuid.UUID) -> RecoveryOpened:
    return RecoveryOpened(recovery_id=recovery_id, calculation_id=calc.calculation_id,
                          settlement_id=calc.settlement_id, district_code=calc.district_code,
                          amount=calc.figures.assistance, opened_at=datetime.now(UTC))


async def test_a_case_paid_and_then_reversed_reads_so_with_its_recovery(approval: Approval) -> None:
    sub, ref = subdistrict(), person()
    paid, overtaken, in_review = calculation(sub, "700.00"), calculation(sub, "80.00"), calculation(sub, "55.50")
    case_paid, case_overtaken, case_in_review = await approval.open_cases([paid, overtaken, in_review], ref)
    async with approval.clerk(sub) as clerk, approval.reviewer() as reviewer:
        for case in (case_paid, case_overtaken):
            assert (await clerk.post(f"/v1/cases/{case['case_id']}/approve", json={})).status_code == 200
            assert (await reviewer.post(f"/v1/cases/{case['case_id']}/approve", json={})).status_code == 200
    await approval.send(TRANSFER_SETTLED, settled(case_paid, paid), ref)
    await approval.get_until(f"/v1/cases/{case_paid['case_id']}", lambda c: c["payment_status"] == "settled")

    # Paid, then reversed: calculation opens a recovery and says so right after its reversal.
    r_paid = uuid.uuid4()
    await approval.send(ASSISTANCE_CALCULATED, reversed_(paid, r_paid), ref)
    opened = await approval.send(ASSISTANCE_CALCULATED, recovery(paid, r_paid), ref)
    # The reversal overtook the payment: the case was cancelled, the bank settled anyway, a recovery followed.
    await approval.send(ASSISTANCE_CALCULATED, reversed_(overtaken, None), ref)
    await approval.get_until(f"/v1/cases/{case_overtaken['case_id']}", lambda c: c["state"] == "cancelled")
    await approval.send(TRANSFER_SETTLED, settled(case_overtaken, overtaken), ref)
    r_overtaken = uuid.uuid4()
    await approval.send(ASSISTANCE_CALCULATED, recovery(overtaken, r_overtaken), ref)
    # Reversed in review: cancelled, nothing was paid, nothing to recover.
    await approval.send(ASSISTANCE_CALCULATED, reversed_(in_review, None), ref)
    await approval.resend(ASSISTANCE_CALCULATED, opened)  # redelivered
    await approval.send(ASSISTANCE_CALCULATED, recovery(paid, r_paid), ref)  # published again, new event id

    detail = await approval.get_until(f"/v1/cases/{case_paid['case_id']}",
                                      lambda c: c["state"] == "reversed_after_payment")
    assert (detail["payment_status"], detail["amount"]) == ("settled", "700.00")
    assert detail["recovery"]["recovery_id"] == str(r_paid) and detail["recovery"]["amount"] == "700.00"
    assert audit_trail(detail)[-2:] == [
        (f"district_reviewer-{DISTRICT}", "district_reviewer", "approve", "awaiting_district", "approved", None, None),
        ("system", "system", "open_recovery", "approved", "reversed_after_payment", "settlement_reversed",
         "reversed by the hospital after payment; 700.00 to recover")]
    raced = await approval.get_until(f"/v1/cases/{case_overtaken['case_id']}",
                                     lambda c: c["state"] == "reversed_after_payment")
    assert (raced["payment_status"], raced["recovery"]["recovery_id"], raced["recovery"]["amount"]) == (
        "settled", str(r_overtaken), "80.00")
    assert [a[4] for a in audit_trail(raced)][-2:] == ["cancelled", "reversed_after_payment"]
    in_review_now = await approval.get_until(f"/v1/cases/{case_in_review['case_id']}",
                                             lambda c: c["state"] == "cancelled")
    assert (in_review_now["recovery"], in_review_now["payment_status"]) == (None, None)

    decided = await approval.decisions({case_paid["case_id"], case_overtaken["case_id"]}, 3)
    assert sorted((str(d.case_id), d.decision) for _, d in decided) == sorted([
        (case_paid["case_id"], "approved"), (case_overtaken["case_id"], "approved"),
        (case_overtaken["case_id"], "cancelled")]), "a recovery decides nothing new: disbursement has nothing to do"
    async with approval.client("ops") as ops:
        listed = (await ops.get("/v1/cases", params={"state": "reversed_after_payment",
                                                     "subdistrict_code": sub})).json()
    assert {c["case_id"] for c in listed["items"]} == {case_paid["case_id"], case_overtaken["case_id"]}
    assert sum(a[2] == "open_recovery" for a in audit_trail(detail)) == 1, "announced twice, recorded once"
