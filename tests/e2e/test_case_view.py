"""The reviewer's case view through the real pipeline: figures equal the calculation, the year so far equals
calculation's ledger, flags, and every view of a name and national ID recorded (only for the case's area)."""

import random
from collections.abc import AsyncIterator
from datetime import date
from typing import Any

import pytest
from simulators.hospital.feed import settlement
from simulators.scenario import DISTRICTS, Endpoints, Staff, import_registry, residents, sign_consents, wait_for

from tests.e2e.helpers import cases_for, push_all, wait_statuses

pytestmark = pytest.mark.e2e
DISTRICT = "310107"  # putuo: subsistence has a 300.00 deductible, inpatient 0.75 at level 2


@pytest.fixture
async def staff(stack: Endpoints) -> AsyncIterator[Staff]:
    s = Staff(stack)
    yield s
    await s.aclose()


def stay(rng: random.Random, patient: Any, sid: str, discharge: date, scope: str, basic: str, critical: str,
         total: str) -> dict[str, Any]:
    body = settlement(rng, patient, sid, discharge=discharge)
    body.update(visit_type="inpatient", hospital_level=2, admission_date=f"{discharge:%Y-%m}-01",
                total_amount=total, policy_scope_amount=scope, basic_insurance_paid=basic,
                critical_illness_paid=critical)
    return body


async def ledger_matches(staff: Staff, ref: str, review: dict[str, Any]) -> bool:
    calc = staff.client(staff.endpoints.calculation, "ops")
    [year] = [y for y in (await calc.get(f"/v1/ledgers/{ref}")).json() if y["year"] == 2026]
    mine = review["year_so_far"]
    return (mine["deductible_used"], mine["committed"]) == (year["deductible_used"], year["committed"])


async def test_case_view_tells_who_what_why_the_year_and_the_flags(staff: Staff) -> None:
    rng = random.Random(12)
    [person] = residents(rng, 1)
    person.district, person.subdistrict, person.category = DISTRICT, DISTRICTS[DISTRICT][0], "subsistence"
    officer = staff.client(staff.endpoints.eligibility, "registry_officer")
    await import_registry(officer, [person])
    await sign_consents(officer, [person])
    hospital = staff.hospital("H002")
    ids = await push_all(hospital, [
        stay(rng, person.patient, "CV-1", date(2026, 3, 10), "10000.00", "6000.00", "1500.00", "12000.00"),
        stay(rng, person.patient, "CV-2", date(2026, 3, 20), "20000.00", "8000.00", "2000.00", "21000.00"),
        stay(rng, person.patient, "CV-3", date(2026, 3, 25), "3000.00", "2000.00", "0.00", "3100.00"),
    ])
    await wait_statuses(hospital, list(ids), {"calculated"})
    cases = {c["settlement_id"]: c for c in await cases_for(staff, set(ids.values()))}
    first, large, small = (cases[ids[k]] for k in ("CV-1", "CV-2", "CV-3"))
    clerk = staff.client(staff.endpoints.approval, "clerk", DISTRICT, person.subdistrict, subject="clerk-wang")
    calc = staff.client(staff.endpoints.calculation, "ops")

    review = (await clerk.get(f"/v1/cases/{first['case_id']}/review")).json()
    who, what, why = review["who"], review["what"], review["why"]
    assert who["known"] and who["name"] == person.patient.name
    nid = person.patient.national_id
    assert who["national_id_masked"] == nid[:3] + "*" * (len(nid) - 7) + nid[-4:]
    assert (who["category"], who["category_valid_from"], who["consent_signed_on"]) == (
        "subsistence", person.valid_from.isoformat(), person.consent_on.isoformat())  # type: ignore[union-attr]
    assert who["category_valid_on_discharge"] is True
    assert (what["hospital_name"], what["hospital_level"], what["visit_type"]) == (
        "上海市杨浦区中心医院", 2, "inpatient")
    assert (what["admission_date"], what["discharge_date"], what["total_amount"]) == (
        "2026-03-01", "2026-03-10", "12000.00")
    assert (what["policy_scope_amount"], what["basic_insurance_paid"], what["critical_illness_paid"]) == (
        "10000.00", "6000.00", "1500.00")
    assert what["reversed"] is False

    # Why: every figure is the calculation's own, and the plain words say them in order.
    calculation = (await calc.get(f"/v1/calculations/{ids['CV-1']}")).json()
    assert (why["policy_id"], why["policy_version"]) == (calculation["policy_id"], calculation["policy_version"])
    assert why["figures"] == calculation["figures"]
    assert (why["figures"]["deductible_applied"], why["figures"]["assistance"]) == ("300.00", first["amount"])
    assert first["amount"] == "1650.00"
    assert why["explanation_zh"] == ("范围内费用 10,000.00 − 基本医保 6,000.00 − 大病保险 1,500.00 = 2,500.00；"
                                     "起付线余额 300.00；(2,500.00 − 300.00) × 75% = 1,650.00；"
                                     "年度限额余 50,000.00；救助 1,650.00")
    assert why["explanation_en"].startswith("policy-scope amount 10,000.00 − basic insurance 6,000.00")

    # The year so far is calculation's ledger, and lists the person's three settlements with their states.
    assert await ledger_matches(staff, first["person_ref"], review)
    year = review["year_so_far"]
    assert (year["deductible"], year["cap"]) == ("300.00", "50000.00")
    assert [s["settlement_id"] for s in year["settlements"]] == [ids["CV-1"], ids["CV-2"], ids["CV-3"]]
    assert {s["state"] for s in year["settlements"]} == {"awaiting_subdistrict"}
    assert {f["code"] for f in review["flags"]} == {"frequent_settlements"}  # three within 30 days
    assert {f["code"] for f in (await clerk.get(f"/v1/cases/{large['case_id']}/review")).json()["flags"]} == {
        "frequent_settlements", "large_amount"}  # 10,000 x 0.75 = 7,500.00 >= 5,000.00
    flagged = (await clerk.get("/v1/cases", params={"flag": "large_amount"})).json()
    assert [c["case_id"] for c in flagged["items"]] == [large["case_id"]]

    # A rejection gives its share back: the year so far follows the ledger down.
    rejected = await clerk.post(f"/v1/cases/{small['case_id']}/reject", json={"reason": "duplicate_claim"})
    assert rejected.status_code == 200, rejected.text

    looked = 1  # views of the first case's personal data so far

    async def released() -> bool:
        nonlocal looked
        again = (await clerk.get(f"/v1/cases/{first['case_id']}/review")).json()
        looked += 1
        return again["year_so_far"]["committed"] == "9150.00" and await ledger_matches(staff, first["person_ref"],
                                                                                         again)
    await wait_for(released, 60, "the rejection to reach the ledger and the case view")

    # Each view of the name and national ID is recorded; outside the area there is no case and no record.
    stranger = staff.client(staff.endpoints.approval, "clerk", DISTRICT, DISTRICTS[DISTRICT][0][:-1] + "9")
    assert (await stranger.get(f"/v1/cases/{first['case_id']}/review")).status_code == 404
    ops = staff.client(staff.endpoints.approval, "ops")
    assert (await ops.get(f"/v1/cases/{first['case_id']}/review")).status_code == 403
    reviewer = staff.client(staff.endpoints.approval, "district_reviewer", DISTRICT, subject="reviewer-li")
    reads = (await reviewer.get(f"/v1/cases/{first['case_id']}/personal-data-reads")).json()
    # the large case's review above read the same person's data too
    assert [(r["actor"], r["role"], r["purpose"], r["fields"]) for r in reads] == [
        ("clerk-wang", "clerk", "case_review", ["name", "national_id"])] * (looked + 1)
    assert (await clerk.get(f"/v1/cases/{first['case_id']}/personal-data-reads")).status_code == 403
