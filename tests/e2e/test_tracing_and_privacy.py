"""One settlement is one trace across every service; no personal data on Kafka, in logs or in spans."""

import asyncio
import random
from collections import Counter
from collections.abc import AsyncIterator
from datetime import date

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient
from simulators.hospital.feed import settlement
from simulators.scenario import Endpoints, Staff, import_registry, residents, sign_consents, wait_for

from shared.settings import ServiceSettings
from shared.testing import OtlpReceiver
from tests.e2e.helpers import approve, cases_for, push_all, wait_statuses

pytestmark = pytest.mark.e2e
CONSUMER = 5  # OTLP SpanKind


@pytest.fixture
async def staff(stack: Endpoints) -> AsyncIterator[Staff]:
    s = Staff(stack)
    yield s
    await s.aclose()


async def test_one_settlement_is_one_trace_from_hospital_to_bank(staff: Staff, otlp: OtlpReceiver) -> None:
    rng = random.Random(21)
    [person] = residents(rng, 1)
    person.category = "extreme_poverty"
    officer = staff.client(staff.endpoints.eligibility, "registry_officer")
    await import_registry(officer, [person])
    await sign_consents(officer, [person])
    hospital = staff.hospital("H001")
    ids = await push_all(hospital, [settlement(rng, person.patient, "TR-1", discharge=date(2026, 9, 1))])
    await wait_statuses(hospital, ["TR-1"], {"calculated"})
    await approve(staff, await cases_for(staff, {ids["TR-1"]}))
    await wait_statuses(hospital, ["TR-1"], {"paid"})

    def trace() -> list[dict]:  # type: ignore[type-arg]
        roots = [s for s in otlp.spans if s["attributes"].get("settlement.id") == ids["TR-1"]
                 and s["name"] == "settlement accepted"]
        return [s for s in otlp.spans if roots and s["trace_id"] == roots[0]["trace_id"]]

    for _ in range(40):  # exporters flush in batches
        spans = trace()
        if any(s["name"] == "bank transfer" for s in spans) and {s["service"] for s in spans} >= {
                "intake", "eligibility", "calculation", "approval", "disbursement"}:
            break
        await asyncio.sleep(0.25)
    spans = trace()
    print("\none settlement's trace (service, span, ms):")
    for s in sorted(spans, key=lambda s: s["duration_ms"], reverse=True)[:40]:
        print(f"  {s['service']:<13} {s['name']:<45} {s['duration_ms']:8.2f}")
    edges = [(s["service"], s["name"]) for s in spans]
    for expected in [("intake", "settlement accepted"), ("eligibility", "settlement.received process"),
                     ("calculation", "eligibility.decided process"), ("approval", "assistance.calculated process"),
                     ("approval", "case approve"), ("disbursement", "case.decided process"),
                     ("disbursement", "bank transfer")]:
        assert expected in edges, f"{expected} missing from the trace: {sorted(set(edges))}"
    bank_transfer = next(s for s in spans if s["name"] == "bank transfer")
    # the payment's transfer span holds the batch's one bank call ("bank batch"), which holds the HTTP requests
    [bank_batch] = [s for s in spans if s["parent_span_id"] == bank_transfer["span_id"] and s["name"] == "bank batch"]
    bank_requests = [s for s in spans if s["parent_span_id"] == bank_batch["span_id"]]
    assert bank_requests and all(s["kind"] == 3 for s in bank_requests), "the bank HTTP call is a client span"  # CLIENT
    span_ids = {s["span_id"] for s in spans}
    orphans = [s for s in spans if s["kind"] == CONSUMER and s["parent_span_id"] not in span_ids]
    assert not orphans, f"consumer spans whose producer is not in the trace: {orphans}"
    assert all(s["attributes"].get("settlement.id", ids["TR-1"]) == ids["TR-1"] for s in spans)


async def every_kafka_record(prefix: str, bootstrap: str) -> list[bytes]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    topics = [t for t in await admin.list_topics() if t.startswith(prefix)]
    await admin.close()
    consumer = AIOKafkaConsumer(*topics, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                                enable_auto_commit=False)
    await consumer.start()
    blobs: list[bytes] = []
    try:
        while True:
            batch = await consumer.getmany(timeout_ms=2000)
            if not batch:
                break
            for records in batch.values():
                for r in records:
                    blobs += [r.key or b"", r.value or b"", *(v for _, v in (r.headers or ()))]
    finally:
        await consumer.stop()
    return blobs


async def test_no_personal_data_on_kafka_in_logs_or_in_spans(staff: Staff, otlp: OtlpReceiver) -> None:
    rng = random.Random(22)
    people = residents(rng, 6, closed_accounts=1)
    officer = staff.client(staff.endpoints.eligibility, "registry_officer")
    await import_registry(officer, people)
    await sign_consents(officer, people)
    hospital = staff.hospital("H002")
    feed = [settlement(rng, p.patient, f"PV-{i}", discharge=date(2026, 10, 1)) for i, p in enumerate(people)]
    ids = await push_all(hospital, feed)
    screened = await wait_statuses(hospital, list(ids), {"calculated", "nothing_to_pay"})
    to_pay = [h for h, s in screened.items() if s["status"] == "calculated"]
    await approve(staff, await cases_for(staff, {ids[h] for h in to_pay}))
    await wait_statuses(hospital, to_pay, {"paid", "payment_failed"})
    paid_people = [p for p, body in zip(people, feed, strict=True) if body["hospital_settlement_id"] in to_pay]
    sms = staff.client(staff.endpoints.sms, "ops")

    async def every_paid_person_was_told() -> bool:  # approved, then paid or failed: the phones were used
        received = Counter(m["to"] for m in (await sms.get("/admin/messages")).json())
        return all(received[p.phone] >= 3 for p in paid_people)

    await wait_for(every_paid_person_was_told, 60, "the SMS of every paid person")
    await asyncio.sleep(1)  # let the exporters flush
    secrets = {v for p in people for v in (p.patient.national_id, p.patient.name, p.bank_account, p.phone) if v}
    records = await every_kafka_record(staff.endpoints.topic_prefix, ServiceSettings().kafka_bootstrap_servers)
    logs = [path.read_bytes() for path in staff.endpoints.logs]
    spans = otlp.raw
    found = {(where, s) for s in secrets for where, blobs in (("kafka", records), ("logs", logs), ("spans", spans))
             if any(s.encode() in b for b in blobs)}
    print(f"\nprivacy: searched {len(records)} Kafka blobs, {len(logs)} service logs "
          f"({sum(map(len, logs))} bytes), {len(spans)} OTLP exports for {len(secrets)} personal values")
    assert len(records) > 0 and len(spans) > 0
    assert not found, f"personal data found: {sorted(w for w, _ in found)}"


def metric(text: str, name: str, **labels: str) -> float:
    """The sum of a Prometheus metric's samples matching the labels."""
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name) and not line.startswith("#"):
            series, value = line.rsplit(" ", 1)
            if series.split("{")[0] == name and all(f'{k}="{v}"' in series for k, v in labels.items()):
                total += float(value)
    return total


async def test_metrics_move_with_a_small_run(staff: Staff) -> None:
    import httpx

    async def scrape() -> dict[str, str]:
        async with httpx.AsyncClient() as http:
            return {name: (await http.get(f"{getattr(staff.endpoints, name)}/metrics")).text
                    for name in ("intake", "eligibility", "calculation", "approval", "disbursement")}

    before = await scrape()
    rng = random.Random(23)
    people = residents(rng, 3)
    for p in people:
        p.category = "extreme_poverty"  # no deductible: every settlement has something to pay
    officer = staff.client(staff.endpoints.eligibility, "registry_officer")
    await import_registry(officer, people)
    await sign_consents(officer, people)
    hospital = staff.hospital("H003")
    feed = [settlement(rng, p.patient, f"MT-{i}", discharge=date(2026, 10, 5)) for i, p in enumerate(people)]
    ids = await push_all(hospital, feed)
    await wait_statuses(hospital, list(ids), {"calculated"})
    await asyncio.sleep(5.5)  # the queue gauge refreshes every 5 s
    waiting = await scrape()
    await approve(staff, await cases_for(staff, set(ids.values())))
    await wait_statuses(hospital, list(ids), {"paid"})
    after = await scrape()

    def moved(service: str, name: str, **labels: str) -> float:
        return metric(after[service], name, **labels) - metric(before[service], name, **labels)

    assert moved("intake", "medassist_settlements_accepted_total", hospital="H003") == 3
    assert moved("eligibility", "medassist_eligibility_decisions_total", reason="eligible") == 3
    assert moved("calculation", "medassist_calculations_total", outcome="assistance") == 3
    assert moved("approval", "medassist_cases_opened_total") == 3
    assert moved("approval", "medassist_case_actions_total", action="approve", to_state="approved") == 3
    assert moved("disbursement", "medassist_payments_opened_total") == 3
    assert moved("disbursement", "medassist_payments_total", status="settled") == 3
    assert metric(waiting["approval"], "medassist_approval_queue_depth", state="awaiting_subdistrict") >= 3
    assert metric(after["eligibility"], "medassist_events_consumed_total", topic="settlement.received") >= 3
    print("\nmetrics: " + ", ".join(sorted({line.split("{")[0].split(" ")[0] for text in after.values()
                                             for line in text.splitlines() if line.startswith("medassist_")})))


async def test_ops_view_reports_lag_and_dead_letters(staff: Staff) -> None:
    import httpx

    from shared.security.staff_auth import mint_dev_token

    ops = mint_dev_token("dev-jwt-secret-change-me-at-least-32-bytes", "ops-1", "ops")
    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {ops}"}) as http:
        overview = (await http.get(f"{staff.endpoints.eligibility}/ops/kafka")).json()
        refused = await http.get(f"{staff.endpoints.eligibility}/ops/kafka", headers={"Authorization": "Bearer x"})
    assert refused.status_code == 401
    assert [(row["group"], row["topic"]) for row in overview["lag"]] == [
        ("eligibility", "settlement.received"), ("eligibility-policies", "policy.published")]
    assert all(row["lag"] >= 0 for row in overview["lag"])
    assert overview["dead_letters"] == {"settlement.received": 0, "policy.published": 0}
