"""End to end: every service as its own process, the bank simulator, real Kafka and PostgreSQL."""

import asyncio
import random
from collections.abc import AsyncIterator
from datetime import date
from decimal import Decimal

import pytest
from simulators.hospital.feed import settlement
from simulators.scenario import Endpoints, Staff, import_registry, residents, wait_for

from tests.e2e.expected import ExpectedLedger
from tests.e2e.helpers import approve, cases_for, enrol, push_all, wait_statuses

pytestmark = pytest.mark.e2e
SCREENED = {"parked", "calculated", "nothing_to_pay"}


@pytest.fixture
async def staff(stack: Endpoints) -> AsyncIterator[Staff]:
    s = Staff(stack)
    yield s
    await s.aclose()


async def bank_transfers(staff: Staff, case_id: str) -> list[dict]:  # type: ignore[type-arg]
    bank = staff.client(staff.endpoints.bank, "ops")
    return (await bank.get("/admin/transfers", params={"remittance_info": f"medical assistance case {case_id}"})
            ).json()


async def test_one_settlement_from_hospital_to_bank(staff: Staff) -> None:
    rng = random.Random(1)
    [person] = residents(rng, 1)
    person.category = "subsistence"
    await enrol(staff, [person])
    hospital = staff.hospital("H001")
    body = settlement(rng, person.patient, "J-0001")
    body.update(visit_type="inpatient", hospital_level=2, policy_scope_amount="8000.00", total_amount="9000.00",
                basic_insurance_paid="5000.00", critical_illness_paid="1000.00")
    ids = await push_all(hospital, [body])
    calculated = await wait_statuses(hospital, ["J-0001"], {"calculated"})
    # base = 8000 - 5000 - 1000 = 2000. Subsistence, inpatient, level 2:
    # 310110: no deductible, ratio 0.80 -> 1600.00;  310107: deductible 300, ratio 0.75 -> 1700 x 0.75 = 1275.00
    expected = {"310110": "1600.00", "310107": "1275.00"}[person.district]
    assert calculated["J-0001"]["assistance"] == expected
    [case] = await cases_for(staff, {ids["J-0001"]})
    assert case["state"] == "awaiting_subdistrict" and case["amount"] == expected
    await approve(staff, [case])
    final = await wait_statuses(hospital, ["J-0001"], {"paid"})
    journey = [step["status"] for step in final["J-0001"]["journey"]]
    assert journey == ["received", "eligible", "calculated", "approved", "paid"]
    reviewer = staff.client(staff.endpoints.approval, "district_reviewer", case["district_code"])
    detail = (await reviewer.get(f"/v1/cases/{case['case_id']}")).json()
    assert [(a["role"], a["to_state"]) for a in detail["audit"]] == [
        ("system", "awaiting_subdistrict"), ("clerk", "awaiting_district"), ("district_reviewer", "approved")]
    assert detail["calculation"]["figures"]["assistance"] == expected
    transfers = await bank_transfers(staff, case["case_id"])
    assert [(t["status"], t["amount"]) for t in transfers] == [("settled", expected)]


async def test_scenario_of_220_settlements_over_35_people_pays_what_the_rule_says(staff: Staff) -> None:
    rng = random.Random(2)
    people = residents(rng, 35)
    await enrol(staff, people)
    hospital = staff.hospital("H002")
    ledger = ExpectedLedger()
    feed, expected, owner = [], {}, {}
    for i in range(220):
        person = rng.choice(people)
        body = settlement(rng, person.patient, f"SC-{i:04d}", discharge=date(2026, 1, 3 + i % 28))
        feed.append(body)
        owner[body["hospital_settlement_id"]] = person
    for body in feed:  # the rule runs in each person's event order: the push order
        person = owner[body["hospital_settlement_id"]]
        expected[body["hospital_settlement_id"]] = ledger.assistance(
            person.patient.national_id, person.district, person.category, body)
    ids = await push_all(hospital, feed)
    screened = await wait_statuses(hospital, list(ids), SCREENED, timeout=180)
    got = {hid: Decimal(s["assistance"] or "0") for hid, s in screened.items()}
    mismatches = {hid: (str(got[hid]), str(expected[hid])) for hid in ids if got[hid] != expected[hid]}
    assert not mismatches, f"system vs rule: {dict(list(mismatches.items())[:5])}"
    to_pay = {hid for hid, amount in expected.items() if amount > 0}
    cases = await cases_for(staff, {ids[h] for h in to_pay})
    assert len(cases) == len(to_pay)
    await approve(staff, cases)
    await wait_statuses(hospital, sorted(to_pay), {"paid"}, timeout=180)
    total = sum((expected[h] for h in to_pay), Decimal("0"))
    paid = Decimal("0")
    for case in cases:
        transfers = await bank_transfers(staff, case["case_id"])
        assert len(transfers) == 1 and transfers[0]["status"] == "settled"
        paid += Decimal(transfers[0]["amount"])
    print(f"\nscenario: settlements=220 people=35 to_pay={len(to_pay)} total={total} paid={paid}")
    assert paid == total


async def test_reversal_before_payment_releases_and_after_payment_opens_a_recovery(staff: Staff) -> None:
    rng = random.Random(3)
    [person] = residents(rng, 1)
    person.category, person.district, person.subdistrict = "low_income", "310110", "310110001"
    await enrol(staff, [person])
    hospital = staff.hospital("H001")

    def big(sid: str) -> dict:  # type: ignore[type-arg]
        body = settlement(rng, person.patient, sid, discharge=date(2026, 4, 1))
        body.update(visit_type="inpatient", hospital_level=2, total_amount="60000.00", policy_scope_amount="60000.00",
                    basic_insurance_paid="0.00", critical_illness_paid="0.00")
        return body

    # low_income 310110: deductible 1000, ratio 0.70, per-settlement cap 20000, annual cap 40000
    ids = await push_all(hospital, [big("RV-1"), big("RV-2")])
    first = await wait_statuses(hospital, ["RV-1", "RV-2"], {"calculated"})
    assert [first[h]["assistance"] for h in ("RV-1", "RV-2")] == ["20000.00", "20000.00"]
    assert (await hospital.reverse("RV-1", "voided_at_hospital")).status_code == 200
    [case1] = await cases_for(staff, {ids["RV-1"]})

    async def cancelled() -> bool:
        return (await cases_for(staff, {ids["RV-1"]}))[0]["state"] == "cancelled"

    await wait_for(cancelled, 60, "the reversed case to be cancelled")
    ids.update(await push_all(hospital, [big("RV-3")]))
    third = await wait_statuses(hospital, ["RV-3"], {"calculated"})
    assert third["RV-3"]["assistance"] == "20000.00", "the reversal gave its 20000 back to the annual cap"
    cases = await cases_for(staff, {ids["RV-2"], ids["RV-3"]})
    await approve(staff, cases)
    await wait_statuses(hospital, ["RV-2", "RV-3"], {"paid"})
    assert (await hospital.reverse("RV-2", "voided_after_payment")).status_code == 200
    reviewer = staff.client(staff.endpoints.calculation, "district_reviewer", "310110")

    async def recovery() -> bool:
        rows = (await reviewer.get("/v1/recoveries")).json()
        return any(r["settlement_id"] == ids["RV-2"] and r["amount"] == "20000.00" for r in rows)

    await wait_for(recovery, 60, "a recovery for the paid, reversed settlement")
    assert await bank_transfers(staff, case1["case_id"]) == [], "the settlement reversed in review was never paid"

    async def paid_and_reversed() -> bool:
        return (await cases_for(staff, {ids["RV-2"]}))[0]["state"] == "reversed_after_payment"

    await wait_for(paid_and_reversed, 60, "the paid, reversed case to say so")
    [case2] = await cases_for(staff, {ids["RV-2"]})
    [recovered] = [r for r in (await reviewer.get("/v1/recoveries")).json() if r["settlement_id"] == ids["RV-2"]]
    assert (case2["payment_status"], case2["recovery"]["recovery_id"], case2["recovery"]["amount"]) == (
        "settled", recovered["recovery_id"], "20000.00"), "paid and reversed, with its recovery; not cancelled"


async def test_a_rejection_frees_the_cap_for_a_later_settlement(staff: Staff) -> None:
    rng = random.Random(4)
    [person] = residents(rng, 1)
    person.category, person.district, person.subdistrict = "low_income", "310110", "310110002"
    await enrol(staff, [person])
    hospital = staff.hospital("H001")

    def big(sid: str) -> dict:  # type: ignore[type-arg]
        body = settlement(rng, person.patient, sid, discharge=date(2026, 5, 1))
        body.update(visit_type="inpatient", hospital_level=1, total_amount="50000.00", policy_scope_amount="50000.00",
                    basic_insurance_paid="0.00", critical_illness_paid="0.00")
        return body

    ids = await push_all(hospital, [big("RJ-1"), big("RJ-2"), big("RJ-3")])
    screened = await wait_statuses(hospital, ["RJ-1", "RJ-2", "RJ-3"], SCREENED)
    assert [screened[h]["assistance"] for h in ("RJ-1", "RJ-2", "RJ-3")] == ["20000.00", "20000.00", "0.00"]
    [case] = await cases_for(staff, {ids["RJ-1"]})
    clerk = staff.client(staff.endpoints.approval, "clerk", "310110", "310110002")
    response = await clerk.post(f"/v1/cases/{case['case_id']}/reject", json={"reason": "duplicate_claim"})
    assert response.status_code == 200 and response.json()["state"] == "rejected"
    await wait_statuses(hospital, ["RJ-1"], {"rejected"})
    await asyncio.sleep(1)  # calculation releases the ledger from case.decided
    ids.update(await push_all(hospital, [big("RJ-4")]))
    later = await wait_statuses(hospital, ["RJ-4"], SCREENED)
    assert later["RJ-4"]["assistance"] == "20000.00"


async def test_a_closed_account_is_paid_after_the_registry_corrects_it(staff: Staff) -> None:
    rng = random.Random(5)
    [person] = residents(rng, 1, closed_accounts=1)
    await enrol(staff, [person])
    hospital = staff.hospital("H003")
    ids = await push_all(hospital, [settlement(rng, person.patient, "CA-1", discharge=date(2026, 6, 1))])
    screened = await wait_statuses(hospital, ["CA-1"], SCREENED)
    if screened["CA-1"]["status"] == "nothing_to_pay":
        pytest.skip("the random settlement gave nothing to pay")
    cases = await cases_for(staff, {ids["CA-1"]})
    await approve(staff, cases)
    failed = await wait_statuses(hospital, ["CA-1"], {"payment_failed"})
    assert failed["CA-1"]["reason"] == "account_closed"
    person.bank_account = person.bank_account[:-4] + "4321"
    await import_registry(staff.client(staff.endpoints.eligibility, "registry_officer"), [person])
    await wait_statuses(hospital, ["CA-1"], {"paid"})
    transfers = await bank_transfers(staff, cases[0]["case_id"])
    assert sorted(t["status"] for t in transfers) == ["failed", "settled"]
    ops = staff.client(staff.endpoints.disbursement, "ops")
    payment = (await ops.get(f"/v1/payments/by-case/{cases[0]['case_id']}")).json()
    assert [(a["attempt"], a["status"]) for a in payment["attempts"]] == [(1, "failed"), (2, "settled")]


async def test_duplicates_and_bank_timeouts_never_pay_twice(staff: Staff) -> None:
    rng = random.Random(6)
    people = residents(rng, 8)
    await enrol(staff, people)
    hospital = staff.hospital("H002")
    feed = [settlement(rng, rng.choice(people).patient, f"DU-{i:03d}", discharge=date(2026, 7, 1 + i % 20))
            for i in range(30)]
    ids = await push_all(hospital, feed)
    await asyncio.sleep(1.1)
    again = await hospital.push_batch(feed[:10])  # the hospital retries a batch: nothing new
    assert again.json()["created"] == 0 and again.json()["duplicates"] == 10
    screened = await wait_statuses(hospital, list(ids), SCREENED)
    to_pay = [h for h, s in screened.items() if s["status"] == "calculated"]
    bank = staff.client(staff.endpoints.bank, "ops")
    faults = {"error_rate": 0.2, "timeout_rate": 0.3, "timeout_sleep_ms": 1200, "duplicate_callback_rate": 0.5,
              "settle_delay_ms": 30}
    assert (await bank.put("/admin/faults", json=faults)).status_code == 200
    try:
        cases = await cases_for(staff, {ids[h] for h in to_pay})
        await approve(staff, cases)
        await wait_statuses(hospital, to_pay, {"paid"}, timeout=180)
    finally:
        await bank.put("/admin/faults", json={"settle_delay_ms": 30})
    stats = (await bank.get("/admin/stats")).json()
    assert stats.get("timeouts_injected", 0) > 0 and stats.get("errors_injected", 0) > 0, stats
    for case in cases:
        transfers = await bank_transfers(staff, case["case_id"])
        assert len(transfers) == 1, f"case {case['case_id']} booked {len(transfers)} transfers"
    print(f"\nfaults: cases={len(cases)} timeouts={stats.get('timeouts_injected')} "
          f"errors={stats.get('errors_injected')} duplicates_absorbed={stats.get('duplicates_absorbed')}")


async def test_staff_never_see_or_act_outside_their_area(staff: Staff) -> None:
    rng = random.Random(7)
    [person] = residents(rng, 1)
    person.category, person.district, person.subdistrict = "extreme_poverty", "310110", "310110001"
    await enrol(staff, [person])
    hospital = staff.hospital("H001")
    ids = await push_all(hospital, [settlement(rng, person.patient, "AR-1", discharge=date(2026, 8, 1))])
    await wait_statuses(hospital, ["AR-1"], {"calculated"})
    [case] = await cases_for(staff, {ids["AR-1"]})
    path = f"/v1/cases/{case['case_id']}"
    other_clerk = staff.client(staff.endpoints.approval, "clerk", "310110", "310110002")
    other_reviewer = staff.client(staff.endpoints.approval, "district_reviewer", "310107")
    own_clerk = staff.client(staff.endpoints.approval, "clerk", "310110", "310110001")
    for outsider in (other_clerk, other_reviewer):
        assert (await outsider.get(path)).status_code == 404
        assert (await outsider.post(f"{path}/approve", json={})).status_code == 404
        queue = (await outsider.get("/v1/cases", params={"state": "awaiting_subdistrict"})).json()
        assert case["case_id"] not in {c["case_id"] for c in queue["items"]}
    batch = (await other_clerk.post("/v1/cases:batch-approve", json={"case_ids": [case["case_id"]]})).json()
    assert batch["results"][0]["code"] == "case_not_found"
    assert (await own_clerk.get(path)).json()["state"] == "awaiting_subdistrict", "nothing changed"
    other_calc = staff.client(staff.endpoints.calculation, "clerk", "310110", "310110002")
    assert (await other_calc.get(f"/v1/calculations/{ids['AR-1']}")).status_code == 404
    reviewer = staff.client(staff.endpoints.approval, "district_reviewer", "310110")
    assert (await reviewer.post(f"{path}/approve", json={})).status_code == 409, "not yet past the clerk"
    assert (await own_clerk.post(f"{path}/approve", json={})).json()["state"] == "awaiting_district"
    sent_back = await reviewer.post(f"{path}/send-back", json={"comment": "attach the invoice"})
    assert sent_back.json()["state"] == "awaiting_subdistrict"
    assert (await own_clerk.post(f"{path}/reject", json={"reason": "other"})).json()["code"] == "reason_required"
