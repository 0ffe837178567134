"""The production sampler on a whole stack (ADR 0029): a sampled settlement is one complete trace across every
service, an unsampled one leaves nothing in the trace store but the spans the error/slow rule keeps."""

import asyncio
import os
import random
from collections.abc import AsyncIterator, Iterator
from datetime import date

import pytest
from aiokafka import AIOKafkaProducer
from simulators.hospital.feed import settlement
from simulators.scenario import Endpoints, Staff, residents

from deploy.local.traces import JOURNEY
from shared.contracts.envelope import Envelope
from shared.contracts.topics import SETTLEMENT_RECEIVED
from shared.settings import ServiceSettings
from shared.testing import OtlpReceiver, read_topic, start_services, unique_prefix
from tests.e2e.helpers import approve, cases_for, enrol, push_all, wait_statuses

pytestmark = pytest.mark.e2e
ERROR, CONSUMER = 2, 5  # OTLP status code, SpanKind
SLOW_MS = 1000


@pytest.fixture(scope="module")
def receiver() -> Iterator[OtlpReceiver]:
    r = OtlpReceiver()
    yield r
    r.stop()


@pytest.fixture(scope="module")
async def staff(receiver: OtlpReceiver) -> AsyncIterator[Staff]:
    prefix = unique_prefix("sampling")
    urls, processes = await start_services(
        prefix, f"{os.environ.get('MEDASSIST_E2E_DB_PREFIX', 'e2e')}_smp",
        env={"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url, "OTEL_BSP_SCHEDULE_DELAY": "200",
             "OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.5",
             "TRACES_KEEP_SLOW_MS": str(SLOW_MS)},
        per_service={"bank": {"BANK_SIM_SETTLE_DELAY_MS": "30"}})
    s = Staff(Endpoints(**urls, topic_prefix=prefix, logs=[p.log_path for p in processes]))
    try:
        yield s
    finally:
        await s.aclose()
        for process in processes:
            process.stop()


async def test_sampled_settlements_are_whole_traces_and_unsampled_ones_leave_only_errors_and_slow_spans(
        staff: Staff, receiver: OtlpReceiver) -> None:
    rng = random.Random(31)
    settings = ServiceSettings(topic_prefix=staff.endpoints.topic_prefix)
    hospital = staff.hospital("H001")
    flags: dict[str, tuple[str, bool]] = {}  # settlement id -> (trace id, sampled), as its traceparent says
    ids: dict[str, str] = {}
    for round_ in range(6):  # at a ratio of 0.5, rounds of 6 until both kinds were drawn (1 in 2^35 to fail)
        people = residents(rng, 6)
        await enrol(staff, people, "extreme_poverty")
        ids |= await push_all(hospital, [settlement(rng, p.patient, f"SM-{round_}-{i}", discharge=date(2026, 9, 1))
                                         for i, p in enumerate(people)])
        records = await read_topic(settings, SETTLEMENT_RECEIVED, expect=len(ids), timeout=60)
        for r in records:
            traceparent = dict(r.headers)["traceparent"].decode()
            _, trace_id, _, flag = traceparent.split("-")
            flags[Envelope.from_bytes(r.value).data["settlement_id"]] = (trace_id, bool(int(flag, 16) & 1))
        if {sampled for _, sampled in flags.values()} == {True, False}:
            break
    assert set(flags) == set(ids.values())
    assert {sampled for _, sampled in flags.values()} == {True, False}

    # An unsampled message that cannot be read: its consumer span ends in error, so it is kept anyway.
    poison_trace = f"{rng.getrandbits(128):032x}"
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers)
    await producer.start()
    try:
        await producer.send_and_wait(settings.topic(SETTLEMENT_RECEIVED), b"{not an envelope", key=b"poison",
                                     headers=[("traceparent", f"00-{poison_trace}-{rng.getrandbits(64):016x}-00"
                                               .encode())])
    finally:
        await producer.stop()

    screened = await wait_statuses(hospital, list(ids), {"calculated", "nothing_to_pay"})
    to_pay = [h for h, s in screened.items() if s["status"] == "calculated"]
    await approve(staff, await cases_for(staff, {ids[h] for h in to_pay}))
    await wait_statuses(hospital, to_pay, {"paid"})
    sampled = {ids[h] for h in to_pay if flags[ids[h]][1]}
    unsampled = {sid for sid, (_, s) in flags.items() if not s}
    assert sampled, "no paid settlement was sampled"

    def spans_of(trace_id: str) -> list[dict]:  # type: ignore[type-arg]
        return [s for s in receiver.spans if s["trace_id"] == trace_id]

    def complete(trace_id: str) -> bool:
        spans = spans_of(trace_id)
        return {s["service"] for s in spans} >= set(JOURNEY) and any(s["name"] == "bank transfer" for s in spans)

    def poison_kept() -> bool:
        return any(s["service"] == "eligibility" for s in spans_of(poison_trace))

    for _ in range(120):  # exporters flush every 200 ms
        if all(complete(flags[sid][0]) for sid in sampled) and poison_kept():
            break
        await asyncio.sleep(0.5)
    for sid in sampled:
        spans = spans_of(flags[sid][0])
        assert complete(flags[sid][0]), f"sampled {sid}: {sorted({(s['service'], s['name']) for s in spans})}"
        span_ids = {s["span_id"] for s in spans}
        orphans = [s for s in spans if s["kind"] == CONSUMER and s["parent_span_id"] not in span_ids]
        assert not orphans, f"consumer spans whose producer is not in the trace: {orphans}"
    await asyncio.sleep(1)  # whatever else the exporters had in hand
    kept = [s for sid in unsampled for s in spans_of(flags[sid][0])]
    print(f"\nsampling: {len(sampled)} paid settlements sampled, {len(unsampled)} unsampled; "
          f"{len(receiver.spans)} spans exported, {len(kept)} of them from unsampled settlements (error or slow)")
    for s in kept:
        assert s["status"] == ERROR or s["duration_ms"] >= SLOW_MS, f"an unsampled settlement's span was exported: {s}"
    [poison] = [s for s in spans_of(poison_trace) if s["service"] == "eligibility"]
    assert (poison["status"], poison["name"], poison["kind"]) == (ERROR, "settlement.received process", CONSUMER)
    parentless_queries = [s for s in receiver.spans if not s["parent_span_id"] and (
        "db.system" in s["attributes"] or "db.system.name" in s["attributes"])]
    assert not parentless_queries, "database statements without a parent are never traced"
