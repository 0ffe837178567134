"""`make run`'s demo: a registry, consents and two hospitals' feed through the whole flow, then a summary.

Against the local stack started by `make services` (ports in simulators.scenario.Endpoints).
"""

import asyncio
import random
import time
from collections import Counter
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import httpx
from simulators.hospital.feed import bad_records, settlement
from simulators.scenario import (
    Endpoints,
    Resident,
    Staff,
    all_pages,
    approve_everything,
    import_registry,
    residents,
    sign_consents,
    wait_for,
)

from deploy.local.traces import JOURNEY, settlement_trace, trace_page, zipkin_services, zipkin_url
from shared.security.crypto import mask_name, mask_phone, person_ref
from shared.security.staff_auth import mint_dev_token
from shared.settings import ServiceSettings

SEED = 2026


def line(label: str, value: object) -> None:
    print(f"  {label:<44} {value}")


async def traces(settlement_ids: list[str]) -> str:
    """The Zipkin page of one paid demo settlement's whole trace (make traces), else how to get one."""
    restart = "bash deploy/local/services.sh stop && make run"
    services = await zipkin_services()
    if services is None:
        return f"make traces (starts Zipkin), then {restart}"
    if "intake" not in services:
        return f"Zipkin is up at {zipkin_url()}/zipkin/ but the services started before it: {restart}"
    found: tuple[str, set[str]] | None = None

    async def whole() -> bool:  # the services export in batches: wait until every service's spans are in
        nonlocal found
        for sid in settlement_ids[:5]:
            found = await settlement_trace(sid)
            if found and set(JOURNEY) <= found[1]:
                return True
        return False

    try:
        await wait_for(whole, 30, "a settlement's whole trace in Zipkin", every=1)
    except TimeoutError:
        pass
    if found is None:
        return f"{zipkin_url()}/zipkin/ (no demo settlement's trace found yet)"
    return trace_page(found[0])


async def main() -> None:
    rng = random.Random(SEED)
    run = f"{int(time.time()) % 100000:05d}"  # settlement ids unique per run, so the demo can run again
    endpoints, stages = Endpoints(), {}
    staff = Staff(endpoints)
    officer = staff.client(endpoints.eligibility, "registry_officer")
    ops_elig = staff.client(endpoints.eligibility, "ops")
    ops_approval = staff.client(endpoints.approval, "ops")
    ops_pay = staff.client(endpoints.disbursement, "ops")
    ops_calc = staff.client(endpoints.calculation, "ops")
    hospitals = {h: staff.hospital(h) for h in ("H001", "H002")}
    people = residents(rng, 40, unregistered=4, without_consent=4, closed_accounts=2)
    print("\n== Medical assistance, enjoyment without application: demo ==")

    started, wall_started = time.monotonic(), time.time()
    imported = await import_registry(officer, people)
    consents = await sign_consents(officer, people)
    line("registry records imported", imported["records"])
    line("consents signed", consents)

    feed: list[tuple[str, dict[str, Any]]] = []
    for i in range(150):
        person = rng.choice(people)
        feed.append((rng.choice(list(hospitals)), settlement(rng, person.patient, f"D{run}-{i:04d}")))
    t = time.monotonic()
    created = duplicates = 0
    origin: dict[str, tuple[str, str]] = {}  # settlement_id -> (hospital, hospital_settlement_id)
    for hospital_id, client in hospitals.items():
        mine = [s for h, s in feed if h == hospital_id]
        for start in range(0, len(mine), 50):
            response = await client.push_batch(mine[start:start + 50])
            response.raise_for_status()
            created += response.json()["created"]
            for r in response.json()["results"]:
                origin[r["settlement_id"]] = (hospital_id, r["hospital_settlement_id"])
    await asyncio.sleep(1.1)
    for hospital_id, body in rng.sample(feed, 5):  # hospitals retrying: absorbed, never counted twice
        duplicates += (await hospitals[hospital_id].push(body)).json()["outcome"] == "duplicate"
    refused = Counter()
    for _why, bad in bad_records(rng, people[0].patient):
        response = await hospitals["H001"].push(bad)
        refused[f"{response.status_code} {response.json()['code']}"] += 1
    line("settlements accepted", f"{created} (+{duplicates} retries absorbed as duplicates)")
    line("bad records refused (problem+json)", dict(refused))

    async def screened() -> bool:
        counts = Counter()
        for c in hospitals.values():
            counts.update(await c.summary())
        return counts["received"] == 0 and counts["eligible"] == 0

    await wait_for(screened, 120, "screening and calculation")
    stages["first push -> every settlement screened and calculated"] = time.monotonic() - t
    late = [p for p in people if p.consent_on is None and p.category][:2]
    for p in late:
        p.consent_on = date(2026, 11, 1)
    rescreened = await sign_consents(officer, late)
    await wait_for(screened, 60, "re-screening after late consents")
    reasons = (await ops_elig.get("/v1/screenings/summary")).json()
    line("late consents (parked settlements screened again)", rescreened)
    line("screening decisions by reason (all runs)", reasons)

    cases = [c for c in await all_pages(ops_approval, "/v1/cases", state="awaiting_subdistrict")
             if c["settlement_id"] in origin]
    for case in cases[:2]:  # hospitals void two settlements while they are in review
        hospital_id, sid = origin[case["settlement_id"]]
        await hospitals[hospital_id].reverse(sid, "voided_at_hospital")
    line("reversed while in review", min(2, len(cases)))
    await asyncio.sleep(1.5)

    t = time.monotonic()
    rejected_one = {"done": False}

    def reject_first(case: dict[str, Any]) -> str | None:
        if not rejected_one["done"]:
            rejected_one["done"] = True
            return "data_error"
        return None

    approvals = await approve_everything(staff, reject_first)
    stages["two approvals through the API"] = time.monotonic() - t
    line("approvals", approvals)

    async def our_payments(**params: Any) -> list[dict[str, Any]]:
        rows = (await ops_pay.get("/v1/payments", params={"limit": 1000, **params})).json()
        return [p for p in rows if p["settlement_id"] in origin]

    async def payments_done() -> bool:
        rows = await our_payments()
        return bool(rows) and not any(p["status"] in ("pending", "sending", "accepted") for p in rows)

    stages["approved -> bank final word"] = await wait_for(payments_done, 120, "payments")
    payments = await our_payments()
    failed = [p for p in payments if p["status"] == "failed"]
    line("payments failed at the bank", Counter(p["failure_reason"] for p in failed) or 0)

    if failed:
        t = time.monotonic()
        failed_refs = {p["person_ref"] for p in failed}
        fixed = [p for p in people if p.bank_account.endswith("0000")]
        for p in fixed:
            p.bank_account = p.bank_account[:-4] + "7777"
        await import_registry(officer, fixed)

        async def reissued() -> bool:
            rows = await our_payments()
            return not any(p["status"] != "settled" and p["person_ref"] in failed_refs
                           and p["status"] != "cancelled" for p in rows)

        stages["corrected account -> re-issued and paid"] = await wait_for(reissued, 120, "re-issued payments")
        line("payments re-issued after the registry corrected accounts", len(failed))

    paid = await our_payments(status="settled")
    if paid:
        hospital_id, sid = origin[paid[0]["settlement_id"]]
        await hospitals[hospital_id].reverse(sid, "voided_after_payment")

        async def recovered() -> bool:
            return bool((await ops_calc.get("/v1/recoveries")).json())

        await wait_for(recovered, 60, "a recovery record")
        line("reversal after payment -> recovery records", len((await ops_calc.get("/v1/recoveries")).json()))

    journeys = []
    for hospital_id, sid in origin.values():
        journeys.append((await hospitals[hospital_id].status(sid)).json())
    reached = Counter(step["status"] for j in journeys for step in j["journey"])
    now = Counter(j["status"] for j in journeys)
    parked_reasons = Counter(step["reason"] for j in journeys for step in j["journey"] if step["status"] == "parked")
    all_cases = [c for c in await all_pages(ops_approval, "/v1/cases") if c["settlement_id"] in origin]
    states = Counter(c["state"] for c in all_cases)
    approved = sum((Decimal(c["amount"]) for c in all_cases if c["state"] == "approved"), Decimal("0"))
    payments = await our_payments()
    settled = [p for p in payments if p["status"] == "settled"]
    reconciliation = (await ops_pay.get("/v1/reconciliation")).json()
    bank = (await staff.client(endpoints.bank, "ops").get("/admin/stats")).json()
    print("\n== Summary of this run ==")
    line("settlements screened", sum(1 for j in journeys if len(j["journey"]) > 1))
    line("eligible (first time or after re-screening)", reached["eligible"])
    line("parked, by reason (first decision)", dict(parked_reasons))
    line("calculated (nothing to pay)", f"{reached['calculated']} ({reached['nothing_to_pay']})")
    line("cases by state", dict(states))
    line("assistance approved (yuan)", f"{approved:.2f}")
    line("paid: transfers settled (count, yuan)",
         f"{len(settled)}, {sum((Decimal(p['amount']) for p in settled), Decimal('0')):.2f}")
    reversed_paid = {c["case_id"] for c in all_cases if c["state"] == "reversed_after_payment"}
    recovered_paid = [p for p in settled if p["case_id"] in reversed_paid]
    line("  of them reversed after payment (recovery)",
         f"{len(recovered_paid)}, {sum((Decimal(p['amount']) for p in recovered_paid), Decimal('0')):.2f}")
    line("failed and waiting for a corrected account", sum(p["status"] == "failed" for p in payments))
    line("settlements by current status", dict(now))
    line("bank: transfers booked (all runs)", bank.get("transfers", 0))
    line("bank: most transfers settled for one case (1 = never paid twice)", bank.get("max_settled_per_remittance", 0))
    line("reconciliation alarms (all days)", sum(r["alarm"] for r in reconciliation))
    told = await residents_told(staff, people, wall_started)
    line("SMS received by the gateway (this run)", f"{told['messages']} to {told['people']} people")
    line("SMS by moment", told["by_moment"])
    line("SMS waiting or opted out", told["not_sent"])
    print("\n== What the residents were told (SMS the gateway received, per person) ==")
    for who, texts in told["per_person"]:
        line(who, f"{len(texts)} SMS")
    if told["example"]:
        who, texts, view = told["example"]
        print(f"\n  one person, {who}, in the order received:")
        for i, text in enumerate(texts, 1):
            print(f"    {i}. {text}")
        print(f"  their own status view (GET /v1/me/settlements, resident token): {view}")
    print("\n== Time per stage ==")
    for stage, seconds in stages.items():
        line(stage, f"{seconds:.2f}s")
    line("whole demo", f"{time.monotonic() - started:.2f}s")
    print("\n== Where to look ==")
    for name in ("intake", "eligibility", "calculation", "approval", "disbursement"):
        line(f"{name} API docs", f"{getattr(endpoints, name)}/docs")
    line("notification API docs", f"{endpoints.notification}/docs")
    line("bank simulator", f"{endpoints.bank}/docs")
    line("SMS gateway simulator (what it received)", f"{endpoints.sms}/admin/messages")
    line("a resident's token", "python -m shared.security.devtoken --role resident --national-id <ID>")
    line("staff token for the APIs", "python -m shared.security.devtoken --role ops")
    line("trace of one paid settlement (Zipkin)", await traces([p["settlement_id"] for p in settled]))
    line("stop everything", "make stop")
    await staff.aclose()
    for c in hospitals.values():
        await c.aclose()


async def residents_told(staff: Staff, people: list[Resident], since: float) -> dict[str, Any]:
    """The messages the SMS gateway received for this run's people, once notification has nothing left to send."""
    endpoints = staff.endpoints
    ops = staff.client(endpoints.notification, "ops")
    gateway = staff.client(endpoints.sms, "ops")
    pepper = ServiceSettings().person_ref_pepper.get_secret_value().encode()
    refs = {person_ref(pepper, p.patient.national_id): p for p in people}

    async def unsent() -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        for status in ("pending", "sending"):
            rows += (await ops.get("/v1/messages", params={"status": status, "limit": 1000})).json()
        return [m for m in rows if m["person_ref"] in refs]

    async def all_sent() -> bool:
        return not await unsent()

    await wait_for(all_sent, 60, "notification to hand every message to the gateway")
    by_phone = {p.phone: p for p in people if p.phone}
    received = [m for m in (await gateway.get("/admin/messages")).json()
                if m["to"] in by_phone and m["received_at"] >= since]
    texts: dict[str, list[str]] = {}
    for m in received:
        texts.setdefault(m["to"], []).append(m["text"])
    moments: Counter[str] = Counter()
    not_sent: Counter[str] = Counter()
    for ref in refs:
        for m in (await ops.get("/v1/messages", params={"person_ref": ref, "limit": 1000})).json():
            if m["created_at"] >= datetime.fromtimestamp(since, UTC).isoformat():
                moments[m["moment"]] += 1
                if m["status"] not in ("sent", "delivered"):
                    not_sent[m["status"]] += 1

    def label(phone: str) -> str:
        p = by_phone[phone]
        return f"{mask_name(p.patient.name)} {mask_phone(phone)}"

    per_person = sorted(((label(phone), t) for phone, t in texts.items()), key=lambda x: -len(x[1]))
    example = None
    if texts:  # the person told the most: a failed payment and its re-issue, where there is one
        phone = max(texts, key=lambda k: (any("未成功" in t for t in texts[k]), len(texts[k])))
        resident = by_phone[phone]
        token = mint_dev_token(endpoints.jwt_secret, person_ref(pepper, resident.patient.national_id), "resident")
        async with httpx.AsyncClient(base_url=endpoints.notification, timeout=30,
                                     headers={"Authorization": f"Bearer {token}"}) as me:
            view = (await me.get("/v1/me/settlements")).json()
        summary = [(s["review"] or {}).get("state", s["decision"]["reason"]) + "/" +
                   ((s["payment"] or {}).get("status") or "-") for s in view["settlements"]]
        example = (label(phone), texts[phone], f"{len(view['settlements'])} settlements this year {summary}")
    return {"messages": len(received), "people": len(texts), "by_moment": dict(moments),
            "not_sent": dict(not_sent), "per_person": per_person, "example": example}


if __name__ == "__main__":
    asyncio.run(main())
