"""`make bench`: throughput and latency of the system against the raw Kafka limit (DESIGN.md section 10).

python -m bench [--registry 100000] [--screening 20000] [--pipeline 5000] [--consented 2000] [--seed 7]

Runs, on the local Kafka and PostgreSQL, with every service as its own process (bench databases, a fresh
topic prefix, bench-only auto-approval), exporting spans to a stand-in collector (bench/trace_sink.py) with
the production sampler (ADR 0029):
  1. baseline   raw aiokafka produce -> consume of messages the size of a settlement event
  2. screening  settlements over HTTP (batches, concurrent), acceptance -> eligibility decided
  3. pipeline   acceptance -> bank call at saturation, then p50/p95/p99 at 60% of that rate
  4. peak RSS of each service process
  5. the saturated pipeline again with every settlement traced (the services restarted with that sampler)
Prints one table and writes it as JSON under bench/results/. Fails only if a settlement is lost or
duplicated (count in = count out), never on a figure.
"""

import argparse
import asyncio
import json
import os
import random
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from simulators.hospital.client import IntakeClient
from simulators.hospital.feed import Patient, national_id, settlement

from shared.contracts.envelope import Envelope
from shared.contracts.events import PERSONS_PER_EVENT
from shared.contracts.topics import (
    ASSISTANCE_CALCULATED,
    CASE_DECIDED,
    ELIGIBILITY_DECIDED,
    REGISTRY_PAYEE,
    REGISTRY_PERSON,
    SETTLEMENT_RECEIVED,
)
from shared.security.staff_auth import mint_dev_token
from shared.settings import ServiceSettings
from shared.testing import (
    ServiceProcess,
    free_port,
    join_stack_sessions,
    stack_available,
    start_services,
    unique_prefix,
)

RESULTS = Path(__file__).resolve().parent / "results"
GOALS = {"screening_per_s": 3000, "pipeline_per_s": 1000, "registry_persons_per_s": 10000, "pipeline_p99_ms": 500,
         "rss_mb": 200}
PACED_SHARE = 0.6  # the paced run offers this share of the saturation just measured
EVERY_SETTLEMENT = {"OTEL_TRACES_SAMPLER": "parentbased_always_on"}


def production_tracing(ratio: float) -> dict[str, str]:
    """The production sampler's settings (deploy/k8s values, docker-compose.yml): ADR 0029."""
    return {"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": str(ratio)}


def describe(tracing: dict[str, str]) -> str:
    sampler = tracing["OTEL_TRACES_SAMPLER"]
    arg = tracing.get("OTEL_TRACES_SAMPLER_ARG")
    kept = "errors and spans >= {}ms kept".format(os.environ.get("TRACES_KEEP_SLOW_MS", "1000"))
    return f"{sampler} {arg}, {kept}" if arg else f"{sampler}, {kept}"


class TopicWatch:
    """Reads a topic from the start in the background, recording when each event was seen, and when it was
    published (its record's CreateTime: the moment the service's outbox relay handed it to the producer)."""

    def __init__(self, settings: ServiceSettings, topic: str, key: Callable[[Envelope], str | None]) -> None:
        self.seen: dict[str, float] = {}
        self.published: dict[str, float] = {}
        self.duplicates = 0
        self.payloads: dict[str, Any] = {}
        self._consumer = AIOKafkaConsumer(settings.topic(topic), bootstrap_servers=settings.kafka_bootstrap_servers,
                                          auto_offset_reset="earliest", enable_auto_commit=False,
                                          max_poll_records=2000)
        self._key = key
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self._consumer.start()
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while True:
            batch = await self._consumer.getmany(timeout_ms=200)
            now = time.time()
            for records in batch.values():
                for record in records:
                    envelope = Envelope.from_bytes(record.value)
                    key = self._key(envelope)
                    if key is None:
                        continue
                    if key in self.seen:
                        self.duplicates += 1
                    else:
                        self.seen[key] = now
                        self.published[key] = record.timestamp / 1000
                        self.payloads[key] = envelope.data

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
        await self._consumer.stop()


async def baseline(settings: ServiceSettings, messages: int, size: int, rounds: int = 3) -> list[float]:
    """Messages per second through the same broker with the same safety settings, nothing else, in `rounds` rounds
    of `messages` each on one producer and consumer. A single round of a few seconds moved by a factor of two
    from run to run (the broker's JIT still cold, a busy neighbour): the figure is the best round."""
    topic = f"{settings.topic_prefix}baseline"
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
    await admin.start()
    await admin.create_topics([NewTopic(topic, num_partitions=6, replication_factor=1)])  # like the real topics
    await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers, enable_idempotence=True,
                                acks="all", linger_ms=5, max_batch_size=256 * 1024)
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=settings.kafka_bootstrap_servers, group_id=topic,
                                auto_offset_reset="earliest", enable_auto_commit=False, max_poll_records=2000)
    await producer.start()
    payload = b"x" * size
    await producer.send_and_wait(topic, payload, key=b"warm-up")
    await consumer.start()
    pending = 1  # the warm-up message
    per_round: list[float] = []
    for _ in range(rounds):
        start = time.perf_counter()
        futures = [await producer.send(topic, payload, key=str(i % 10_000).encode()) for i in range(messages)]
        pending += messages
        while pending > 0:
            batch = await consumer.getmany(timeout_ms=500)
            pending -= sum(len(r) for r in batch.values())
            if batch:
                await consumer.commit()
        per_round.append(messages / (time.perf_counter() - start))
        await asyncio.gather(*futures)
    await consumer.stop()
    await producer.stop()
    return per_round


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _process_cpu(stat: str) -> tuple[str, float]:
    """(command name, CPU seconds used) from a /proc/<pid>/stat line."""
    name, rest = stat.split(" (", 1)[1].rsplit(")", 1)
    fields = rest.split()
    return name, (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime + stime


def cpu_seconds(processes: list[ServiceProcess], sink: ServiceProcess) -> dict[str, float]:
    """CPU time used so far by each service process, the broker, the database, the trace collector, this client
    and the machine."""
    services = {p.pid: p.module.split(".")[-1] for p in processes} | {sink.pid: "trace collector"}
    used = dict.fromkeys([*services.values(), "kafka", "postgres", "bench client"], 0.0)
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            name, seconds = _process_cpu(stat.read_text())
        except (OSError, IndexError, ValueError):
            continue  # the process ended meanwhile
        pid = int(stat.parent.name)
        group = services.get(pid) or {"java": "kafka", "postgres": "postgres"}.get(name)
        if pid == os.getpid():
            group = "bench client"
        if group:
            used[group] += seconds
    cpu = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    used["machine"] = sum(int(cpu[i]) for i in (0, 1, 2, 5, 6, 7)) / CLOCK_TICKS  # user nice system irq softirq steal
    return used


def cpu_ms_per_settlement(before: dict[str, float], after: dict[str, float], settlements: int) -> dict[str, float]:
    per = {name: round((after[name] - before.get(name, 0.0)) * 1000 / settlements, 3) for name in after}
    per["anything else"] = round(per["machine"] - sum(v for k, v in per.items() if k != "machine"), 3)
    return per


async def statements(processes: list[ServiceProcess]) -> dict[str, float]:
    """SQL statements each service has sent so far (medassist_db_statements_total, summed over its instances)."""
    sent: dict[str, float] = {}
    async with httpx.AsyncClient(timeout=10) as client:
        for p in processes:
            name = p.module.split(".")[-1]
            if name in ("bank", "sms") or p.module.startswith("simulators"):
                continue
            text = (await client.get(f"{p.url}/metrics")).text
            sent[name] = sent.get(name, 0.0) + sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                                                   if line.startswith("medassist_db_statements_total{"))
    return sent


async def wal_written(settings: ServiceSettings) -> tuple[int, int, int]:
    """WAL records and full-page images the whole PostgreSQL cluster has written so far (pg_stat_wal), and its
    WAL position in bytes: every database in it counts, the bench's and anyone else's, and the background
    writers' too. The bytes are exact (the insert position); the counters lag by up to a second (a backend
    reports them at most once a second, after a transaction)."""
    conn = await asyncpg.connect(host=settings.pg_host, port=settings.pg_port, user=settings.pg_user,
                                 password=settings.pg_password.get_secret_value(), database="postgres")
    try:
        row = await conn.fetchrow("SELECT wal_records, wal_fpi, pg_wal_lsn_diff(pg_current_wal_insert_lsn(), '0/0') "
                                  "AS wal_bytes FROM pg_stat_wal")
    finally:
        await conn.close()
    assert row is not None
    return int(row["wal_records"]), int(row["wal_fpi"]), int(row["wal_bytes"])


def wal_per_settlement(before: tuple[int, int, int], after: tuple[int, int, int], settlements: int) -> dict[str, float]:
    records, fpi, written = (a - b for a, b in zip(after, before, strict=True))
    return {"records": round(records / settlements, 1), "full_page_images": round(fpi / settlements, 2),
            "bytes": round(written / settlements)}


def per_settlement(before: dict[str, float], after: dict[str, float], settlements: int) -> dict[str, float]:
    per = {name: round((after[name] - before.get(name, 0.0)) / settlements, 2) for name in after}
    per["all services"] = round(sum(per.values()), 2)
    return per


async def quiet(processes: list[ServiceProcess], sink: ServiceProcess, timeout: float = 120) -> None:
    """Wait until the services have finished earlier work (under a quarter of a core in all, idle loops use about
    a tenth), so that a measurement's CPU is its own and not the tail of the step before."""
    names = {p.module.split(".")[-1] for p in processes}
    deadline = time.monotonic() + timeout
    last = cpu_seconds(processes, sink)
    while time.monotonic() < deadline:
        await asyncio.sleep(1)
        now = cpu_seconds(processes, sink)
        if sum(now[n] - last[n] for n in names) < 0.25:
            return
        last = now


async def spans_exported(sink: ServiceProcess) -> dict[str, int]:
    """Spans and traces the collector has received so far."""
    async with httpx.AsyncClient(timeout=10) as client:
        counts: dict[str, int] = (await client.get(f"{sink.url}/counts")).json()
        return counts


async def spans_settled(sink: ServiceProcess, before: dict[str, int], settlements: int) -> dict[str, float]:
    """Spans and traces exported per settlement since `before`, once the exporters have flushed (the batch
    processors send every 5 s: wait until the count stops moving)."""
    last = await spans_exported(sink)
    while True:
        await asyncio.sleep(6)
        now = await spans_exported(sink)
        if now == last:
            break
        last = now
    return {k: round((now[k] - before[k]) / settlements, 2) for k in ("spans", "traces")}


def peak_rss_mb(process: ServiceProcess) -> float:
    status = Path(f"/proc/{process.pid}/status").read_text()
    kb = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM:"))
    return kb / 1024


async def timed(label: str, step: Awaitable[Any]) -> Any:
    start = time.perf_counter()
    result = await step
    print(f"  {label}: {time.perf_counter() - start:.1f}s", flush=True)
    return result


async def push(clients: list[IntakeClient], feed: list[dict[str, Any]], batch: int, concurrency: int,
               rate: float | None = None) -> dict[str, tuple[str, float]]:
    """Push the feed in batches, `concurrency` at a time, at most `rate` settlements/s when given;
    returns hospital_settlement_id -> (settlement_id, accepted at)."""
    accepted: dict[str, tuple[str, float]] = {}
    queue: asyncio.Queue[tuple[float, list[dict[str, Any]]]] = asyncio.Queue()
    began = time.monotonic()
    for start in range(0, len(feed), batch):
        queue.put_nowait((began + start / rate if rate else 0.0, feed[start:start + batch]))

    async def worker(client: IntakeClient) -> None:
        while not queue.empty():
            due, items = queue.get_nowait()
            if due > time.monotonic():
                await asyncio.sleep(due - time.monotonic())
            response = await client.push_batch(items)
            response.raise_for_status()
            now = time.time()
            for r in response.json()["results"]:
                accepted[r["hospital_settlement_id"]] = (r["settlement_id"], now)

    await asyncio.gather(*(worker(clients[i % len(clients)]) for i in range(concurrency)))
    return accepted


async def wait_until(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        await asyncio.sleep(0.2)


async def consumed(settings: ServiceSettings, wanted: dict[str, tuple[int, list[str]]], timeout: float) -> None:
    """Wait until each topic holds at least its count of events and each of its consumer groups has committed
    them all: the registry's events are read before the screening is timed, so it measures screening alone."""
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap_servers)
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
    await consumer.start()
    await admin.start()
    deadline = time.monotonic() + timeout
    try:
        while True:
            done = True
            for topic, (at_least, groups) in wanted.items():
                described = await admin.describe_topics([settings.topic(topic)])  # the consumer's metadata is stale
                parts = [TopicPartition(settings.topic(topic), p["partition"])
                         for t in described for p in t["partitions"]]
                end = await consumer.end_offsets(parts) if parts else {}
                done = done and sum(end.values()) >= at_least
                for group in groups if done else ():
                    committed = await admin.list_consumer_group_offsets(f"{settings.topic_prefix}{group}",
                                                                        partitions=parts)
                    done = done and all(tp in committed and committed[tp].offset >= end[tp] for tp in parts
                                        if end[tp] > 0)
            if done:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"timed out waiting for {', '.join(wanted)} to be consumed")
            await asyncio.sleep(1)
    finally:
        await admin.close()
        await consumer.stop()


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


async def run(args: argparse.Namespace) -> dict[str, Any]:
    rng = random.Random(args.seed)
    prefix = unique_prefix("bench")
    settings = ServiceSettings(topic_prefix=prefix)
    if not await stack_available(settings):
        raise SystemExit("PostgreSQL is not reachable: run `make up` (make bench does it)")
    print(f"bench: registry={args.registry} screening={args.screening} pipeline={args.pipeline} seed={args.seed}")
    tracing = production_tracing(args.sampler_ratio)
    sink = ServiceProcess("bench.trace_sink", {}, free_port()).start()
    await sink.wait_ready(30)
    urls, processes = await timed("start services", start_services(
        prefix, "bench", env={"LOG_LEVEL": "WARNING", "OTEL_EXPORTER_OTLP_ENDPOINT": sink.url, **tracing},
        per_service={"approval": {"BENCH_AUTO_APPROVE": "true"}, "bank": {"BANK_SIM_SETTLE_DELAY_MS": "20"}}))
    print(f"  tracing: {describe(tracing)}")
    secret = ServiceSettings().jwt_secret.get_secret_value()
    officer = httpx.AsyncClient(base_url=urls["eligibility"], timeout=300, headers={
        "Authorization": f"Bearer {mint_dev_token(secret, 'bench', 'registry_officer')}"})
    hospitals = [IntakeClient(urls["intake"], h, f"dev-secret-{h}", timeout=300) for h in ("H001", "H002", "H003")]
    received = TopicWatch(settings, SETTLEMENT_RECEIVED, lambda e: (
        e.data["settlement_id"] if e.event_type == "SettlementReceived" else None))
    decided = TopicWatch(settings, ELIGIBILITY_DECIDED, lambda e: (
        e.data["settlement"]["settlement_id"] if e.event_type == "EligibilityDecided" else None))
    cases = TopicWatch(settings, CASE_DECIDED, lambda e: e.data["settlement_id"])
    calculated = TopicWatch(settings, ASSISTANCE_CALCULATED,
                            lambda e: e.data["settlement_id"] if e.event_type == "AssistanceCalculated" else None)
    try:
        sample = Envelope.wrap(settlement_event_sample(), person_ref="a" * 64, producer="intake").to_bytes()
        base_rounds = await timed("baseline", baseline(settings, args.baseline, len(sample)))
        base = max(base_rounds)

        consented = [Patient(national_id(rng, "310110"), f"受益人{i}") for i in range(args.consented)]
        # The rest of the registry as bare IDs (a 1.3 M registry in ~100 MB); a record is built when it is sent.
        other_ids = [national_id(rng, "310110") for _ in range(args.registry - args.consented)]
        drawn = random.Random(args.seed).sample(range(len(other_ids)), min(50_000, len(other_ids)))
        others = [Patient(other_ids[i], f"登记人{i}") for i in drawn]  # whom the feed draws, from the whole registry

        def registry_records(start: int, stop: int) -> list[dict[str, Any]]:
            out = [{"national_id": consented[i].national_id, "name": consented[i].name, "category": "extreme_poverty",
                    "district_code": "310110", "subdistrict_code": "310110001", "valid_from": "2026-01-01",
                    "bank_account": f"6222{i:012d}1", "phone": f"139{i:08d}"}
                   for i in range(start, min(stop, len(consented)))]
            return out + [{"national_id": other_ids[i], "name": f"登记人{i}", "category": "low_income",
                           "district_code": "310110", "subdistrict_code": "310110002", "valid_from": "2026-01-01"}
                          for i in range(max(start - len(consented), 0), min(stop - len(consented), len(other_ids)))]

        async def import_registry() -> None:
            for start in range(0, args.registry, 5000):
                body = orjson.dumps({"records": registry_records(start, start + 5000)})
                (await officer.post("/v1/registry/import", content=body,
                                    headers={"Content-Type": "application/json"})).raise_for_status()

        async def sign_consents() -> None:
            sem = asyncio.Semaphore(16)

            async def consent(p: Patient) -> None:
                async with sem:
                    (await officer.post("/v1/consents", json={"national_id": p.national_id,
                                                              "signed_on": "2026-01-01"})).raise_for_status()

            await asyncio.gather(*(consent(p) for p in consented))

        def events(records: int) -> int:
            """How many registry events the first `records` records make at least (ADR 0033): a request's
            distinct persons (a drawn ID may repeat), PERSONS_PER_EVENT to an event."""
            def persons(start: int, stop: int) -> int:
                return len({p.national_id for p in consented[start:stop]}
                           | set(other_ids[max(start - len(consented), 0):max(stop - len(consented), 0)]))
            return sum(-(-persons(start, min(start + 5000, records)) // PERSONS_PER_EVENT)
                       for start in range(0, records, 5000))

        registry_start, registry_cpu_before = time.perf_counter(), cpu_seconds(processes, sink)
        await timed(f"registry: import {args.registry} people", import_registry())
        registry_rate = args.registry / (time.perf_counter() - registry_start)
        payees = {REGISTRY_PAYEE: (events(len(consented)), ["disbursement", "notification"])}
        await timed("registry: wait until the import's events are consumed", consumed(settings, {
            REGISTRY_PERSON: (events(args.registry), ["approval"]), **payees}, 1800))
        registry_cpu = cpu_ms_per_settlement(registry_cpu_before, cpu_seconds(processes, sink),
                                            max(1, args.registry // 1000))
        await timed(f"registry: {args.consented} consents", sign_consents())
        await timed("registry: wait until its events are consumed", consumed(settings, {
            REGISTRY_PERSON: (events(args.registry) + len(consented), ["approval"]), **payees}, 1800))
        await received.start()
        await decided.start()
        await cases.start()
        await calculated.start()

        def feed_of(n: int, eligible_share: float, tag: str) -> list[dict[str, Any]]:
            out = []
            for i in range(n):
                pool = consented if rng.random() < eligible_share else others
                out.append(settlement(rng, rng.choice(pool), f"{tag}-{i:07d}",
                                      discharge=date(2026, 1, 2) + timedelta(days=rng.randrange(300))))
            return out

        screening_feed = feed_of(args.screening, 0.05, "SCR")
        cpu_before = cpu_seconds(processes, sink)
        accepted = await timed(f"screening: push {args.screening}", push(hospitals, screening_feed, 500, 6))
        ids = {sid for sid, _ in accepted.values()}
        await timed("screening: wait for every decision",
                    wait_until(lambda: ids <= decided.seen.keys(), 600, "screening decisions"))
        first_accept = min(t for _, t in accepted.values())
        screening_rate = len(ids) / (max(decided.seen[i] for i in ids) - first_accept)
        screening_cpu = cpu_ms_per_settlement(cpu_before, cpu_seconds(processes, sink), len(ids))
        screening_lost = len(ids - decided.seen.keys())

        bank = httpx.AsyncClient(base_url=urls["bank"], timeout=120)
        stages: dict[str, dict[str, list[float]]] = {}
        hops: dict[str, dict[str, list[float]]] = {}

        async def through_the_pipeline(tag: str, n: int, rate: float | None) -> tuple[float, list[float], int, int]:
            """Push n settlements of consented people (at `rate`/s, or as fast as accepted); returns
            (bank calls per second, latencies acceptance -> bank call in ms, settlements, cases)."""
            feed = feed_of(n, 1.0, tag)
            label = f"at {rate:.0f}/s" if rate else "as fast as accepted"
            accepted_p = await timed(f"pipeline {tag}: push {n} {label}",
                                     push(hospitals, feed, 20 if rate else 250, 4, rate=rate))
            pids = {sid: t for sid, t in accepted_p.values()}

            def settled_by_calculation() -> bool:
                # every settlement opened a case, or its calculation gave nothing to pay (the annual cap was used up)
                return all(s in cases.seen
                           or calculated.payloads.get(s, {}).get("figures", {}).get("assistance") == "0.00"
                           for s in pids)

            await timed(f"pipeline {tag}: wait for every case", wait_until(settled_by_calculation, 600, "cases"))
            case_of = {sid: cases.payloads[sid]["case_id"] for sid in pids if sid in cases.payloads}
            transfers: dict[str, dict[str, Any]] = {}
            deadline = time.monotonic() + 600
            while time.monotonic() < deadline:
                rows = (await bank.get("/admin/transfers/all")).json()
                transfers = {r["remittance_info"].rsplit(" ", 1)[-1]: r for r in rows}
                if all(c in transfers for c in case_of.values()):
                    break
                await asyncio.sleep(0.5)
            paid = [s for s in case_of if case_of[s] in transfers]
            bank_call = {s: transfers[case_of[s]]["received_at"] for s in paid}
            latencies = [(bank_call[s] - pids[s]) * 1000 for s in paid]
            throughput = len(latencies) / (max(bank_call.values()) - min(pids.values())) if latencies else 0.0
            # Where the time goes: each hop from one topic to the next, as the watchers saw them.
            marks = [("intake -> eligibility.decided", pids), ("-> assistance.calculated", decided.seen),
                     ("-> case.decided", calculated.seen), ("-> bank call", cases.seen), ("", bank_call)]
            stages[tag] = {
                label: [(after[s] - before[s]) * 1000 for s in paid]
                for (label, before), (_, after) in zip(marks, marks[1:], strict=False)
            }
            # The same path by service: from the event it consumes being published to its own being published
            # (Kafka's delivery, the wait for its batch, the batch, the commit and its relay), the bank call last.
            published = [("intake: accepted -> published", pids),
                         ("eligibility: -> eligibility.decided published", received.published),
                         ("calculation: -> assistance.calculated published", decided.published),
                         ("approval: -> case.decided published", calculated.published),
                         ("disbursement: -> bank call", cases.published), ("", bank_call)]
            hops[tag] = {
                label: [(after[s] - before[s]) * 1000 for s in paid if s in before and s in after]
                for (label, before), (_, after) in zip(published, published[1:], strict=False)
            }
            return throughput, latencies, len(pids), len(case_of)

        peak_rss: dict[str, float] = {}
        warmed = [0, 0]  # settlements, cases of the warm-ups

        async def fresh_services(tracing_env: dict[str, str], tag: str) -> None:
            """Restart the services with a sampler, warm them up off the clock (connections, prepared statements,
            first-call paths) and wait until they are quiet: each saturated measurement starts from the same
            state, so the two samplers' figures compare."""
            for p in processes:
                peak_rss[p.module.split(".")[-1]] = max(peak_rss.get(p.module.split(".")[-1], 0.0), peak_rss_mb(p))
            services = [p for p in processes if not p.module.startswith("simulators")]
            for p in services:
                p.restart(tracing_env)
            await timed(f"restart services: {describe(tracing_env)}",
                        asyncio.gather(*(p.wait_ready(120) for p in services)))
            _, _, n, c = await through_the_pipeline(tag, min(200, args.pipeline), None)
            warmed[0] += n
            warmed[1] += c
            await quiet(processes, sink)

        await fresh_services(tracing, "WARM1")
        cpu_before, sql_before = cpu_seconds(processes, sink), await statements(processes)
        wal_before = await wal_written(settings)
        spans_before = await spans_exported(sink)
        pipeline_rate, _, saturated_n, saturated_cases = await through_the_pipeline("SAT", args.pipeline, None)
        pipeline_cpu = cpu_ms_per_settlement(cpu_before, cpu_seconds(processes, sink), saturated_n)
        pipeline_sql = per_settlement(sql_before, await statements(processes), saturated_n)
        pipeline_wal = wal_per_settlement(wal_before, await wal_written(settings), saturated_n)
        pipeline_spans = await spans_settled(sink, spans_before, saturated_n)
        # Latency at a load the system sustains: a share of the saturation just measured, unless forced; from a
        # quiet system, not behind the saturated run's follow-up events (payments settling) still in the queues.
        paced_rate = args.pipeline_rate or round(max(PACED_SHARE * pipeline_rate, 1.0), 1)
        await quiet(processes, sink)
        _, latencies, paced_n, paced_cases = await through_the_pipeline("PACE", args.paced, paced_rate)

        # The same saturated pipeline with every settlement traced: what sampling saves.
        traced_n = args.traced if args.traced is not None else args.pipeline
        traced: dict[str, Any] = {}
        if traced_n:
            await fresh_services(EVERY_SETTLEMENT, "WARM2")
            cpu_before, spans_before = cpu_seconds(processes, sink), await spans_exported(sink)
            traced_rate, _, traced_n, traced_cases = await through_the_pipeline("TRACED", traced_n, None)
            traced = {"sampler": describe(EVERY_SETTLEMENT), "settlements": traced_n,
                      "pipeline_per_s": round(traced_rate, 1),
                      "cpu_ms_per_settlement": cpu_ms_per_settlement(cpu_before, cpu_seconds(processes, sink),
                                                                     traced_n),
                      "spans_per_settlement": await spans_settled(sink, spans_before, traced_n)}
            saturated_cases += traced_cases
            saturated_n += traced_n
        saturated_n += warmed[0]
        saturated_cases += warmed[1]
        rss = {p.module.split(".")[-1]: round(max(peak_rss.get(p.module.split(".")[-1], 0.0), peak_rss_mb(p)), 1)
               for p in processes}
        # Count in = count out over the whole run (the screening's eligible 5% went all the way too).
        all_cases = {c["case_id"] for c in cases.payloads.values()}
        per_case: dict[str, int] = {}
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            per_case = {}
            for r in (await bank.get("/admin/transfers/all")).json():
                case_id = r["remittance_info"].rsplit(" ", 1)[-1]
                per_case[case_id] = per_case.get(case_id, 0) + 1
            if all_cases <= per_case.keys():
                break
            await asyncio.sleep(0.5)
        paid_twice = sum(1 for n in per_case.values() if n > 1)
        bank_calls = len(all_cases & per_case.keys())
        await bank.aclose()
    finally:
        await received.stop()
        await decided.stop()
        await cases.stop()
        await calculated.stop()
        await officer.aclose()
        for h in hospitals:
            await h.aclose()
        for p in processes:
            p.stop()
        sink.stop()

    result = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "sizes": {"registry": args.registry, "screening": args.screening, "pipeline": args.pipeline,
                  "consented": args.consented, "paced": args.paced, "pipeline_rate": args.pipeline_rate,
                  "traced": args.traced, "sampler_ratio": args.sampler_ratio, "seed": args.seed},
        "sampler": describe(tracing),
        "baseline_msgs_per_s": round(base, 1),
        "baseline_rounds_msgs_per_s": [round(r, 1) for r in base_rounds],
        "registry_persons_per_s": round(registry_rate, 1),
        "screening_per_s": round(screening_rate, 1),
        "pipeline_per_s": round(pipeline_rate, 1),
        "paced_offered_per_s": paced_rate,
        "pipeline_latency_ms": {"p50": round(percentile(latencies, 50), 1), "p95": round(percentile(latencies, 95), 1),
                                "p99": round(percentile(latencies, 99), 1)} if latencies else {},
        "pipeline_stage_ms": {label: {p: round(percentile(values, p), 1) for p in (50, 95, 99)}
                              for label, values in stages.get("PACE", {}).items() if values},
        "pipeline_hop_ms": {label: {p: round(percentile(values, p), 1) for p in (50, 95, 99)}
                            for label, values in hops.get("PACE", {}).items() if values},
        "cpu_ms_per_settlement": {"screening": screening_cpu, "pipeline": pipeline_cpu},
        "registry_cpu_ms_per_1000_persons": registry_cpu,
        "statements_per_settlement": pipeline_sql,
        "wal_per_settlement": pipeline_wal,
        "spans_per_settlement": pipeline_spans,
        "every_settlement_tracing": traced,
        "peak_rss_mb": rss,
        "checks": {"screening_lost": screening_lost, "screening_duplicate_decisions": decided.duplicates,
                   "pipeline_settlements": saturated_n + paced_n, "pipeline_cases": saturated_cases + paced_cases,
                   "cases_in_run": len(all_cases), "cases_with_a_bank_call": bank_calls,
                   "cases_paid_twice": paid_twice},
    }
    return result


def settlement_event_sample() -> Any:
    from decimal import Decimal

    from shared.contracts.events import SettlementReceived

    return SettlementReceived(settlement_id=uuid.uuid4(), hospital_id="H001", hospital_settlement_id="SCR-0000001",
                              hospital_level=2, visit_type="inpatient", admission_date=date(2026, 3, 1),
                              discharge_date=date(2026, 3, 9), total_amount=Decimal("12345.67"),
                              policy_scope_amount=Decimal("11000.00"), basic_insurance_paid=Decimal("6000.00"),
                              critical_illness_paid=Decimal("1000.00"))


def report(result: dict[str, Any]) -> None:
    base = result["baseline_msgs_per_s"]
    traced = result["every_settlement_tracing"]
    rows = [
        ("raw Kafka produce->consume (msgs/s)", base, 1.0, "-"),
        ("screening: accepted -> decided (/s)", result["screening_per_s"], result["screening_per_s"] / base,
         f">= {GOALS['screening_per_s']}"),
        ("full pipeline: accepted -> bank call (/s)", result["pipeline_per_s"], result["pipeline_per_s"] / base,
         f">= {GOALS['pipeline_per_s']}"),
        ("registry import (persons/s)", result["registry_persons_per_s"], result["registry_persons_per_s"] / base,
         f">= {GOALS['registry_persons_per_s']}"),
    ]
    if traced:
        rows.insert(3, ("  the same, every settlement traced (/s)", traced["pipeline_per_s"],
                        traced["pipeline_per_s"] / base, "-"))
    rate = result["paced_offered_per_s"]
    for p in ("p50", "p95", "p99"):
        value = result["pipeline_latency_ms"].get(p, float("nan"))
        goal = f"<= {GOALS['pipeline_p99_ms']}" if p == "p99" else "-"
        rows.append((f"latency {p} at {rate:.0f}/s offered (ms)", value, None, goal))
    for name, mb in result["peak_rss_mb"].items():
        rows.append((f"peak RSS {name} (MB)", mb, None, f"<= {GOALS['rss_mb']}"))
    print(f"\ntracing: {result['sampler']} (figures below, unless they say every settlement traced)")
    print(f"paced run offered {rate:.1f}/s: "
          + ("forced by --pipeline-rate" if result["sizes"]["pipeline_rate"] else
             f"{PACED_SHARE:.0%} of the saturated pipeline's {result['pipeline_per_s']:.1f}/s"))
    print(f"\n{'figure':<44} {'value':>10} {'x baseline':>11}  goal")
    for label, value, ratio, goal in rows:
        print(f"{label:<44} {value:>10.1f} {'' if ratio is None else f'{ratio:.3f}':>11}  {goal}")
    print(f"\n{'stage at ' + format(rate, '.0f') + '/s offered (ms)':<44} {'p50':>10} {'p95':>11} {'p99':>8}")
    for label, ps in result["pipeline_stage_ms"].items():
        print(f"{label:<44} {ps[50]:>10.1f} {ps[95]:>11.1f} {ps[99]:>8.1f}")
    print(f"\n{'by service, published -> published (ms)':<48} {'p50':>6} {'p95':>11} {'p99':>8}")
    for label, ps in result["pipeline_hop_ms"].items():
        print(f"{label:<48} {ps[50]:>6.1f} {ps[95]:>11.1f} {ps[99]:>8.1f}")
    cpu = result["cpu_ms_per_settlement"]
    every = traced.get("cpu_ms_per_settlement", {})
    print(f"\n{'CPU ms per settlement':<44} {'screening':>10} {'pipeline':>11} {'every settlement traced':>24}")
    for name in cpu["screening"]:
        all_traced = f"{every[name]:.3f}" if name in every else ""
        print(f"{name:<44} {cpu['screening'][name]:>10.3f} {cpu['pipeline'][name]:>11.3f} {all_traced:>24}")
    print(f"\n{'CPU ms per 1,000 persons imported and consumed':<44} {'registry':>10}")
    for name, ms in result["registry_cpu_ms_per_1000_persons"].items():
        print(f"{name:<44} {ms:>10.1f}")
    spans = result["spans_per_settlement"]
    every_spans = traced.get("spans_per_settlement", {})
    for what in ("spans", "traces"):
        print(f"{what + ' exported per settlement':<44} {'':>10} {spans[what]:>11.2f} "
              f"{every_spans.get(what, ''):>24}")
    print(f"\n{'SQL statements per settlement (pipeline)':<44} {'':>10}")
    for name, n in result.get("statements_per_settlement", {}).items():
        print(f"{name:<44} {n:>10.2f}")
    wal = result["wal_per_settlement"]
    print(f"\n{'WAL per settlement (pipeline, whole cluster)':<44} {'':>10}")
    print(f"{'records':<44} {wal['records']:>10.1f}")
    print(f"{'full-page images':<44} {wal['full_page_images']:>10.2f}")
    print(f"{'bytes':<44} {wal['bytes']:>10.0f}")
    print(f"\nchecks: {result['checks']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--registry", type=int, default=100_000)
    parser.add_argument("--consented", type=int, default=2_000)
    parser.add_argument("--screening", type=int, default=20_000)
    parser.add_argument("--pipeline", type=int, default=5_000)
    parser.add_argument("--paced", type=int, default=3_000, help="settlements for the latency figure")
    parser.add_argument("--pipeline-rate", type=float, default=None,
                        help="settlements/s offered for the latency figure (default: 60%% of the saturation "
                             "just measured)")
    parser.add_argument("--traced", type=int, default=None,
                        help="settlements for the saturated pipeline with every settlement traced "
                             "(default: as many as --pipeline; 0 skips it)")
    parser.add_argument("--sampler-ratio", type=float, default=0.1,
                        help="the production sampler's ratio of new traces (OTEL_TRACES_SAMPLER_ARG)")
    parser.add_argument("--baseline", type=int, default=50_000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    join_stack_sessions()  # a test session starting meanwhile must not delete this run's topics
    result = asyncio.run(run(args))
    report(result)
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"bench-{result['when'].replace(':', '')}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(f"written to {path}")
    checks = result["checks"]
    lost_or_doubled = (checks["screening_lost"] or checks["cases_paid_twice"]
                       or checks["cases_with_a_bank_call"] != checks["cases_in_run"])
    if lost_or_doubled:
        raise SystemExit("the pipeline lost or duplicated settlements during the run")


if __name__ == "__main__":
    main()
