"""End to end with a bank that misbehaves: false failure callbacks on 5% of payments, settlements after a
failure report, late bookings after the payer gave up, timeouts, errors and duplicate callbacks, over more
than 500 approved cases. Counted from the bank's own books: every approved case paid exactly once, and the
only alarms are the double bookings written into the bank's books by hand."""

import asyncio
import random
from collections import Counter
from datetime import date
from decimal import Decimal
from typing import Any

import httpx
import pytest
from simulators.hospital.feed import settlement
from simulators.scenario import Endpoints, Staff, residents, wait_for

from tests.e2e.expected import ExpectedLedger
from tests.e2e.helpers import approve, cases_for, enrol, push_all

pytestmark = pytest.mark.e2e
MISBEHAVIOUR = {
    "settle_delay_ms": 30,
    "false_failure_rate": 0.05,  # a signed "failed, account_closed" while the bank holds the transfer
    "failure_then_settle_rate": 0.02, "late_settle_ms": 1500,  # reports failed, then pays
    "late_booking_rate": 0.02, "late_booking_ms": 4000,  # books after the adapter's whole retry budget
    "timeout_rate": 0.05, "timeout_sleep_ms": 800,  # books, answers too late
    "error_rate": 0.05,  # 503 without booking
    "duplicate_callback_rate": 0.3,
}


async def listing(client: httpx.AsyncClient, path: str, **params: Any) -> list[dict[str, Any]]:
    """Every row of one of disbursement's plain-list endpoints, page by page."""
    rows: list[dict[str, Any]] = []
    while True:
        page = (await client.get(path, params={**params, "limit": 1000, "offset": len(rows)})).json()
        rows += page
        if len(page) < 1000:
            return rows


async def test_500_approved_cases_through_a_misbehaving_bank_are_each_paid_once(stack: Endpoints) -> None:
    staff = Staff(stack)
    bank = staff.client(stack.bank, "ops")
    disbursement = staff.client(stack.disbursement, "ops")
    try:
        rng = random.Random(10)
        people = residents(rng, 300)
        await enrol(staff, people, "subsistence")
        ledger, feed, expected = ExpectedLedger(), [], {}
        for i in range(620):
            person = people[i % len(people)]
            body = settlement(rng, person.patient, f"MB-{i:04d}", discharge=date(2026, 2, 1 + i % 27))
            body.update(visit_type="inpatient", hospital_level=2)
            feed.append(body)
            expected[body["hospital_settlement_id"]] = ledger.assistance(
                person.patient.national_id, person.district, person.category, body)
        to_pay = {h for h, amount in expected.items() if amount > 0}
        assert len(to_pay) >= 500
        (await bank.put("/admin/faults", json=MISBEHAVIOUR)).raise_for_status()
        before = (await bank.get("/admin/stats")).json()
        ids = await push_all(staff.hospital("H003"), feed)
        wanted = {ids[h] for h in to_pay}
        cases: list[dict[str, Any]] = []

        async def all_cases_open() -> bool:
            nonlocal cases
            cases = await cases_for(staff, wanted)
            return len(cases) == len(wanted)
        await wait_for(all_cases_open, 300, "every case with assistance to be opened", every=2)
        await approve(staff, cases)
        case_ids = {c["case_id"] for c in cases}
        amounts = {c["case_id"]: Decimal(c["amount"]) for c in cases}
        payments: dict[str, dict[str, Any]] = {}

        async def all_settled() -> bool:
            nonlocal payments
            rows = await listing(disbursement, "/v1/payments", status="settled")
            payments = {p["case_id"]: p for p in rows if p["case_id"] in case_ids}
            return len(payments) == len(case_ids)
        await wait_for(all_settled, 420, "every approved case's payment to settle", every=3)
        stats = (await bank.get("/admin/stats")).json()
    finally:
        await bank.put("/admin/faults", json={"settle_delay_ms": 30})

    injected = {k: stats.get(k, 0) - before.get(k, 0) for k in (
        "false_failures_injected", "failures_then_settled_injected", "late_bookings_injected", "timeouts_injected",
        "errors_injected", "duplicates_absorbed")}
    assert all(injected.values()), f"the bank did misbehave in every way: {injected}"
    booked = [e for e in (await bank.get("/admin/entries")).json()
              if e["remittance_info"].removeprefix("medical assistance case ") in case_ids]
    per_case = Counter(e["remittance_info"].removeprefix("medical assistance case ") for e in booked)
    assert (len(case_ids), len(per_case), sum(per_case.values())) == (len(case_ids),) * 3, "count in = count out"
    assert [c for c, n in per_case.items() if n > 1] == [], "no case has two booked transfers"
    assert {e["remittance_info"].removeprefix("medical assistance case "): Decimal(e["amount"]) for e in booked} \
        == amounts, "each paid its approved amount"
    assert all(p["status"] == "settled" for p in payments.values())
    alarms = [a for a in await listing(disbursement, "/v1/reconciliation/alarms") if a["case_id"] in case_ids]
    assert alarms == [], "no alarm where nothing was injected"

    # Three double bookings written straight into the bank's books: statement reconciliation finds exactly them.
    doubled = sorted(case_ids)[:3]
    written = [(await bank.post("/admin/entries", json={"idempotency_key": f"{payments[c]['payment_id']}-1"})
                ).json()["entry_reference"] for c in doubled]
    report = (await disbursement.post("/v1/reconciliation/statement")).json()
    alarms = [a for a in await listing(disbursement, "/v1/reconciliation/alarms") if a["case_id"] in case_ids]
    assert sorted((a["kind"], a["case_id"], a["bank_reference"]) for a in alarms) == sorted(
        ("booked_twice", c, ref) for c, ref in zip(doubled, written, strict=True))
    assert all(a["recovery_amount"] == f"{amounts[a['case_id']]:.2f}" for a in alarms)
    total = sum(amounts.values(), Decimal(0))
    print(f"\nmisbehaving bank: approved={len(case_ids)} amount={total} booked={sum(per_case.values())} "
          f"settled={len(payments)} injected={injected} statement={report}")
    await staff.aclose()
    await asyncio.sleep(0)
