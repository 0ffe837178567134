"""The reliability rules against the real broker and database: nothing lost, nothing applied twice."""

import asyncio
import contextlib
import os
import signal
import subprocess
import uuid
from collections.abc import Sequence
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaError
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.trace import StatusCode
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from shared.contracts.envelope import Envelope
from shared.contracts.topics import SETTLEMENT_RECEIVED, dlq
from shared.messaging import consumer, outbox
from shared.messaging.consumer import ConsumerRunner
from shared.messaging.inbox import claim_new
from shared.messaging.kafka import KafkaProducer, Message
from shared.messaging.outbox import OutboxRelay
from shared.telemetry import EntrySpans, KeepErrorsAndSlow, NoParentlessQueries, RecordUnsampledEntries
from shared.testing import ROOT, statements_sent
from shared.tests.integration.helpers import (
    committed_total,
    effects,
    settlement_event,
    spawn_probe,
    wait_until,
    write_outbox,
)
from shared.tests.integration.probe import probe_handler
from shared.unit_of_work import UnitOfWork

pytestmark = pytest.mark.integration


@contextlib.asynccontextmanager
async def running(*workers):
    tasks = [asyncio.create_task(w.run()) for w in workers]
    try:
        yield
    finally:
        for w in workers:
            w.stop()
        await asyncio.wait(tasks, timeout=20)
        for t in tasks:
            if t.done() and not t.cancelled() and t.exception():
                raise t.exception()  # type: ignore[misc]


def runner(settings, db, producer, delay: float = 0.0) -> ConsumerRunner[UnitOfWork]:
    return ConsumerRunner(settings=settings, db=db, producer=producer, group_id="probe",
                          topics=[SETTLEMENT_RECEIVED], handler=probe_handler(delay), unit_of_work=UnitOfWork)


async def test_10k_events_with_injected_duplicates_apply_exactly_once(probe_settings, db, producer) -> None:
    envelopes = [settlement_event(i) for i in range(10_000)]
    await write_outbox(db, probe_settings, envelopes)
    # Duplicates: the same event (same event_id, same key) delivered again, as a retrying producer would.
    topic = probe_settings.topic(SETTLEMENT_RECEIVED)
    for e in envelopes[::10]:
        await producer.send(topic, e.to_bytes(), key=e.person_ref)
    async with running(OutboxRelay(db, producer, probe_settings), runner(probe_settings, db, producer)):
        async def all_consumed() -> bool:
            return await committed_total(probe_settings, "probe") >= 11_000

        await wait_until(all_consumed, 120, "11,000 messages consumed and committed")
    applied, most = await effects(db)
    print(f"\n10k+dupes: messages=11000 distinct_applied={applied} max_applications_per_event={most}")
    assert (applied, most) == (10_000, 1)


async def test_consumer_sigkilled_mid_batch_loses_nothing_and_applies_once(probe_settings, db, producer) -> None:
    await write_outbox(db, probe_settings, [settlement_event(i) for i in range(3_000)])
    relay = OutboxRelay(db, producer, probe_settings)
    while await relay.publish_once():
        pass
    consumer = spawn_probe(probe_settings, "consume", "--handler-delay", "0.05")
    try:
        async def some_applied() -> bool:
            return (await effects(db))[0] >= 400

        await wait_until(some_applied, 60, "the consumer to apply some events")
        consumer.send_signal(signal.SIGKILL)
        consumer.wait(10)
        at_kill = (await effects(db))[0]
        assert at_kill < 3_000, "the kill must land before the end to prove anything"
        consumer = spawn_probe(probe_settings, "consume")

        async def all_applied() -> bool:
            return (await effects(db))[0] == 3_000 and await committed_total(probe_settings, "probe") >= 3_000

        await wait_until(all_applied, 90, "all 3,000 events applied after restart")
    finally:
        consumer.terminate()
        consumer.wait(20)
    applied, most = await effects(db)
    print(f"\nSIGKILL: applied_at_kill={at_kill} applied_after_restart={applied} max_applications={most}")
    assert (applied, most) == (3_000, 1)


async def test_relay_killed_after_publish_before_its_commit_republishes_and_applies_once(
    probe_settings, db, producer
) -> None:
    await write_outbox(db, probe_settings, [settlement_event(i) for i in range(200)])
    dying = spawn_probe(probe_settings, "relay", "--die-before-commit")
    assert dying.wait(60) == 9, "the relay should have died right after publishing"
    async with db.transaction() as session:
        unpublished = await session.scalar(text("SELECT count(*) FROM outbox"))
    assert unpublished == 200, "the crash came before the rows' delete was committed"
    relay = spawn_probe(probe_settings, "relay")
    try:
        async def all_published() -> bool:
            async with db.transaction() as session:
                return await session.scalar(text("SELECT count(*) FROM outbox")) == 0

        await wait_until(all_published, 60, "the restarted relay to publish")
    finally:
        relay.terminate()
        relay.wait(20)
    async with running(runner(probe_settings, db, producer)):
        async def consumed() -> bool:
            return await committed_total(probe_settings, "probe") >= 400

        await wait_until(consumed, 60, "both copies consumed")
    applied, most = await effects(db)
    print(f"\nrelay crash: published=400 (200 twice) applied={applied} max_applications={most}")
    assert (applied, most) == (200, 1)


async def test_poison_messages_go_to_dlq_and_the_partition_keeps_flowing(probe_settings, db, producer) -> None:
    same_person = 7  # one key, so every message lands on the same partition in this order
    good_before = [settlement_event(i, person=same_person) for i in range(5)]
    poison = settlement_event(5, hospital_id="POISON", person=same_person)
    good_after = [settlement_event(i, person=same_person) for i in range(6, 11)]
    topic = probe_settings.topic(SETTLEMENT_RECEIVED)
    for e in [*good_before, poison]:
        await producer.send_and_wait(topic, e.to_bytes(), key=e.person_ref)
    await producer.send_and_wait(topic, b"{not json", key=poison.person_ref)
    for e in good_after:
        await producer.send_and_wait(topic, e.to_bytes(), key=e.person_ref)
    async with running(runner(probe_settings, db, producer)):
        async def applied_all_good() -> bool:
            return (await effects(db))[0] == 10

        await wait_until(applied_all_good, 60, "the 10 good events")
    dead = AIOKafkaConsumer(probe_settings.topic(dlq(SETTLEMENT_RECEIVED)),
                            bootstrap_servers=probe_settings.kafka_bootstrap_servers,
                            auto_offset_reset="earliest", enable_auto_commit=False)
    await dead.start()
    try:
        records: list[Any] = []  # aiokafka ConsumerRecords (untyped library)
        while len(records) < 2:
            batch = await dead.getmany(timeout_ms=5000)
            assert batch, "expected two dead letters"
            records += [r for rs in batch.values() for r in rs]
    finally:
        await dead.stop()
    errors = sorted(dict(r.headers)["dlq.error.type"].decode() for r in records)
    print(f"\npoison: good_applied=10 dead_letters={len(records)} errors={errors}")
    assert errors == ["JSONDecodeError", "ValueError"]
    assert (await effects(db))[1] == 1


async def test_broker_restart_while_producing_and_consuming_loses_nothing(probe_settings, db, producer) -> None:
    total = 2_000
    envelopes = [settlement_event(i) for i in range(total)]
    kafka = ["bash", str(ROOT / "deploy/local/kafka.sh")]

    async def write_slowly() -> None:
        for start in range(0, total, 50):
            await write_outbox(db, probe_settings, envelopes[start:start + 50])
            await asyncio.sleep(0.05)

    async with running(OutboxRelay(db, producer, probe_settings), runner(probe_settings, db, producer)):
        writer = asyncio.create_task(write_slowly())

        async def some() -> bool:
            return (await effects(db))[0] >= 300

        await wait_until(some, 60, "consumption to start")
        await asyncio.to_thread(subprocess.run, [*kafka, "stop"], check=True, env=os.environ)
        await asyncio.sleep(3)
        await asyncio.to_thread(subprocess.run, [*kafka, "up"], check=True, env=os.environ)
        await writer

        async def everything() -> bool:
            return (await effects(db))[0] == total

        await wait_until(everything, 180, "every event after the broker restart")
    applied, most = await effects(db)
    print(f"\nbroker restart: written={total} applied={applied} max_applications={most}")
    assert (applied, most) == (total, 1)


async def test_a_producer_whose_batch_is_never_confirmed_is_renewed_and_sends_again(probe_settings) -> None:
    """What the relay relies on when aiokafka is stuck after a broker restart: a timeout, then a new client."""
    producer = KafkaProducer(probe_settings)
    await producer.start()
    try:
        stuck = producer._producer
        # No such topic, and the broker creates none: nothing can confirm it, as with a stuck client.
        with pytest.raises(TimeoutError):
            await producer.publish([Message(f"{probe_settings.topic_prefix}nowhere", b"x", "k")], timeout_s=1)
        assert producer._producer is not stuck, "a new client after the timeout"
        await producer.publish([Message(probe_settings.topic(SETTLEMENT_RECEIVED), b"x", "k")], timeout_s=30)
    finally:
        await producer.stop()


async def test_the_relay_publishes_only_while_it_holds_the_lock_one_statement_a_pass_in_id_order(
        probe_settings, db, producer) -> None:
    envelopes = [settlement_event(i, person=i % 3) for i in range(30)]  # three keys, ten events each
    await write_outbox(db, probe_settings, envelopes)
    relay = OutboxRelay(db, producer, probe_settings.model_copy(update={"outbox_batch_max": 12}))
    count = text("SELECT count(*) FROM outbox")
    async with db.transaction() as other:  # another relay of this database, in its pass
        await other.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": outbox._RELAY_LOCK_KEY})
        assert await relay.publish_once() == 0, "a relay that is not the leader publishes nothing"
        assert await other.scalar(count) == 30
    with statements_sent(db) as sent:
        assert await relay.publish_once() == 12
    assert len(sent) == 1, sent  # the lock, the read and the delete in one round trip
    assert [await relay.publish_once() for _ in range(3)] == [12, 6, 0]
    async with db.transaction() as session:
        assert await session.scalar(count) == 0, "what was published is gone"
    topic = AIOKafkaConsumer(probe_settings.topic(SETTLEMENT_RECEIVED),
                             bootstrap_servers=probe_settings.kafka_bootstrap_servers,
                             auto_offset_reset="earliest", enable_auto_commit=False)
    await topic.start()
    try:
        records: list[Any] = []  # aiokafka ConsumerRecords (untyped library)
        while len(records) < 30:
            batch = await topic.getmany(timeout_ms=5000)
            assert batch, f"expected 30 events, got {len(records)}"
            records += [r for rs in batch.values() for r in rs]
    finally:
        await topic.stop()
    by_key: dict[str, list[uuid.UUID]] = {}
    for r in sorted(records, key=lambda r: (r.partition, r.offset)):
        by_key.setdefault(r.key.decode(), []).append(Envelope.from_bytes(r.value).event_id)
    assert by_key == {e.person_ref: [x.event_id for x in envelopes if x.person_ref == e.person_ref]
                      for e in envelopes}, "each event once, a key's events in the order written"


async def test_a_publish_that_fails_leaves_every_row_for_the_next_pass(probe_settings, db, producer,
                                                                     monkeypatch) -> None:
    await write_outbox(db, probe_settings, [settlement_event(i) for i in range(20)])
    relay = OutboxRelay(db, producer, probe_settings)

    async def refuse(messages: Sequence[Message], timeout_s: float) -> None:  # after the relay deleted the rows
        raise KafkaError("refused")

    monkeypatch.setattr(producer, "publish", refuse)
    with pytest.raises(KafkaError):
        await relay.publish_once()
    async with db.transaction() as session:
        assert await session.scalar(text("SELECT count(*) FROM outbox")) == 20, "the delete was rolled back"
    monkeypatch.undo()
    assert await relay.publish_once() == 20


async def test_the_inbox_claims_each_id_once_with_one_statement_text_for_any_batch_size(probe_settings, db) -> None:
    seen = [uuid.uuid4() for _ in range(3)]
    async with db.transaction() as session:
        assert await claim_new(session, "probe", seen) == set(seen)
    fresh = [uuid.uuid4() for _ in range(100)]
    with statements_sent(db) as sent:
        async with db.transaction() as session:
            assert await claim_new(session, "probe", [fresh[0], fresh[0]]) == {fresh[0]}  # a twin counts once
            assert await claim_new(session, "probe", [*seen, *fresh]) == set(fresh[1:])
            assert await claim_new(session, "other group", seen[:1]) == set(seen[:1])  # per consumer group
            assert await claim_new(session, "probe", []) == set()
    assert len(sent) == 3 and len(set(sent)) == 1, sent  # one statement each, prepared once whatever the size


@pytest.mark.parametrize("first_commits", [True, False])
async def test_a_claim_racing_another_transaction_of_the_group_for_an_id_never_gets_it_twice(
        probe_settings, db, first_commits: bool) -> None:
    raced, other = uuid.uuid4(), uuid.uuid4()
    async with db.sessions() as first, db.sessions() as second:
        assert await claim_new(first, "probe", [raced]) == {raced}
        late = asyncio.create_task(claim_new(second, "probe", [raced, other]))
        await asyncio.sleep(0.3)
        assert not late.done(), "the second claim waits for the first transaction"
        if first_commits:
            await first.commit()
            with pytest.raises(IntegrityError):  # the batch rolls back, the consumer retries it
                await late
            await second.rollback()
        else:
            await first.rollback()
            assert await late == {raced, other}  # the first never applied it
            await second.commit()
    async with db.transaction() as retry:
        assert await claim_new(retry, "probe", [raced, other]) == ({other} if first_commits else set())


@pytest.mark.parametrize(("slow_ms", "handler_delay_s"), [(600_000, 0.0), (500, 1.0)])
async def test_unsampled_messages_leave_their_consumer_span_only_when_dead_lettered_or_slow(
        probe_settings, db, producer, monkeypatch, slow_ms: int, handler_delay_s: float) -> None:
    # The production sampler at a ratio of 0 (ADR 0029): only a message's traceparent says sampled or not.
    exported = InMemorySpanExporter()
    keep = KeepErrorsAndSlow([SimpleSpanProcessor(exported)], slow_ms=slow_ms, max_per_s=1000)
    provider = TracerProvider(sampler=NoParentlessQueries(RecordUnsampledEntries(ParentBased(TraceIdRatioBased(0)))))
    provider.add_span_processor(keep)
    spans = EntrySpans()
    spans.use(provider, keep)
    monkeypatch.setattr(consumer, "entry_spans", spans)
    topic = probe_settings.topic(SETTLEMENT_RECEIVED)
    traces: dict[str, str] = {}  # trace id -> what the message is

    async def send(what: str, value: bytes, key: str, flags: str) -> None:
        trace_id, span_id = uuid.uuid4().hex, uuid.uuid4().hex[:16]
        traces[trace_id] = what
        await producer.send_and_wait(topic, value, key=key, headers={"traceparent": f"00-{trace_id}-{span_id}-{flags}"})

    good = [settlement_event(i) for i in range(4)]
    for i, e in enumerate(good):
        await send("sampled" if i == 0 else "unsampled", e.to_bytes(), e.person_ref, "01" if i == 0 else "00")
    poison = settlement_event(9, hospital_id="POISON")
    await send("handler failure", poison.to_bytes(), poison.person_ref, "00")
    await send("undecodable", b"{not json", poison.person_ref, "00")
    expected = {"sampled", "handler failure", "undecodable"} | ({"unsampled"} if handler_delay_s else set())

    def kept() -> dict[str, list[Any]]:
        by_kind: dict[str, list[Any]] = {}
        for span in exported.get_finished_spans():
            by_kind.setdefault(traces[f"{span.context.trace_id:032x}"], []).append(span)
        return by_kind

    async with running(runner(probe_settings, db, producer, delay=handler_delay_s)):
        async def done() -> bool:
            return (await effects(db))[0] == len(good) and set(kept()) >= expected

        await wait_until(done, 60, "the good events applied and the kept spans exported")
    spans_by = kept()
    print(f"\nunsampled messages, slow threshold {slow_ms} ms: kept "
          f"{ {k: len(v) for k, v in sorted(spans_by.items())} }, keep.kept={keep.kept}")
    assert set(spans_by) == expected, "a quick unsampled message that did nothing wrong leaves no span"
    assert len(spans_by.get("unsampled", [])) == (3 if handler_delay_s else 0)
    for kind_spans in spans_by.values():
        for span in kind_spans:
            assert span.name == "settlement.received process" and span.context.trace_flags.sampled
            assert span.parent is not None and span.parent.is_remote, "under the producer's span, in its trace"
            assert span.attributes["messaging.destination.name"] == topic
    [dead] = spans_by["handler failure"]
    assert (dead.status.status_code, dead.status.description) == (StatusCode.ERROR, "dead-lettered")
    assert [e.attributes["exception.type"] for e in dead.events] == ["ValueError"]
    assert dead.attributes["event.id"] == str(poison.event_id) and dead.attributes["person_ref"] == poison.person_ref
    [unreadable] = spans_by["undecodable"]
    assert (unreadable.status.status_code, unreadable.status.description) == (StatusCode.ERROR, "undecodable")
    for span in spans_by.get("unsampled", []):
        assert span.status.status_code is StatusCode.UNSET
        assert span.end_time - span.start_time >= slow_ms * 1_000_000, "kept because its batch was slow"
