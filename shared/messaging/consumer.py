"""The one consumer runner every service uses.

Per poll: decode the batch, open ONE unit of work (shared.unit_of_work), claim the event ids in the inbox,
hand the new events to the service's handler, write the events it emitted to the outbox, commit, and only
then commit the Kafka offsets. A crash anywhere
before the offset commit redelivers the batch; the inbox turns the redelivery into a no-op.

The offset commit (a broker round trip) goes on while the next batch is polled and applied (ADR 0042): it is
started only after the batch's database commit, each one waits for the one before (so offsets only move
forward), and a rebalance or a stop waits for the one under way.

Failures: infrastructure errors (database or broker unreachable) are retried without limit, so an outage
pauses consumption instead of emptying the topic into the DLQ. Any other error is retried a bounded number
of times for the batch; then each event is tried alone and the ones that still fail go to `<topic>.dlq`
with the error, and the partition keeps flowing.
"""

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic

from aiokafka import ConsumerRebalanceListener, ConsumerRecord, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError, RebalanceInProgressError
from opentelemetry.trace import Span, SpanContext, SpanKind, Status, StatusCode
from opentelemetry.util.types import AnyValue
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential_jitter,
    wait_fixed,
)

from shared.contracts.envelope import Envelope
from shared.contracts.events import EventData
from shared.contracts.topics import dlq
from shared.db import Database
from shared.messaging.inbox import claim_new
from shared.messaging.kafka import KafkaProducer, Message, create_consumer
from shared.metrics import CONSUMER_LAG, DEAD_LETTERS, EVENTS_CONSUMED, EVENTS_DUPLICATE, HANDLER_RETRIES
from shared.retry import until_up
from shared.settings import ServiceSettings
from shared.telemetry import entry_spans, parse_traceparent, set_attributes_if_kept
from shared.unit_of_work import U, UnitOfWorkFactory, unit_of_work

log = logging.getLogger(__name__)
_WAITED_S = 0.001
"""A getmany that took this long waited for a fetch: what it returns is fresh, with nothing behind it to gather."""


@dataclass
class Event:
    """A decoded message handed to a handler: envelope, typed payload, and the span of its processing."""

    topic: str  # logical topic name
    envelope: Envelope
    data: EventData
    record: ConsumerRecord = field(repr=False)
    span: Span = field(repr=False)


Handler = Callable[[U, list[Event]], Awaitable[None]]
"""Applies a batch of new events inside the unit of work (the inbox has already dropped the duplicates)."""


def is_transient(exc: BaseException) -> bool:
    """Errors that say the infrastructure is away, not that the event is bad."""
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    if isinstance(exc, (OperationalError, InterfaceError, ConnectionError, OSError, TimeoutError, KafkaError)):
        return True
    text = f"{type(exc).__name__} {getattr(exc, 'orig', '')}"
    return any(s in text for s in ("SerializationError", "DeadlockDetected", "ConnectionDoesNotExist",
                                   "CannotConnectNow", "TooManyConnections"))


def _parent_of(record: ConsumerRecord) -> SpanContext | None:
    """The trace a message continues: its W3C headers (invalid ones are ignored, and the message starts a trace)."""
    traceparent = tracestate = None
    for key, value in record.headers or ():
        if key == "traceparent":
            traceparent = value.decode(errors="replace")
        elif key == "tracestate":
            tracestate = value.decode(errors="replace")
    return parse_traceparent(traceparent, tracestate)


def _described(envelope: Envelope) -> dict[str, AnyValue]:
    """A consumer span's attributes from its message's envelope."""
    return {"event.id": str(envelope.event_id), "event.type": envelope.event_type, "person_ref": envelope.person_ref}


class _WaitForBatch(ConsumerRebalanceListener):  # type: ignore[misc]  # aiokafka is untyped: its base class is Any
    """Before partitions are taken away, let the batch in hand finish and commit its offsets."""

    def __init__(self, lock: asyncio.Lock, committed: Callable[[], Awaitable[None]]) -> None:
        self._lock = lock
        self._committed = committed

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        async with self._lock:
            await self._committed()

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        return None


class ConsumerRunner(Generic[U]):
    """Consumes logical `topics` as consumer group `group_id` and applies batches with `handler`, each in a
    unit of work made by `unit_of_work`."""

    def __init__(
        self,
        *,
        settings: ServiceSettings,
        db: Database,
        producer: KafkaProducer,
        group_id: str,
        topics: Sequence[str],
        handler: Handler[U],
        unit_of_work: UnitOfWorkFactory[U],
    ) -> None:
        self._settings = settings
        self._db = db
        self._producer = producer
        self._group = group_id
        self._topics = list(topics)
        self._handler = handler
        self._unit_of_work = unit_of_work
        self._physical_to_logical = {settings.topic(t): t for t in topics}
        self._consumer = create_consumer(settings, group_id, self._topics)
        self._lock = asyncio.Lock()
        self._committing: asyncio.Task[None] | None = None  # the last batch's offset commit, maybe still under way
        self._stopping = asyncio.Event()
        self._service = settings.service_name
        self.ready = asyncio.Event()
        self._lag_recorded_at = 0.0
        # Per topic, made once: a metric's labels() and a span name cost a lookup and a string per event.
        self._span_names = {t: f"{t} process" for t in topics}
        self._consumed = {t: EVENTS_CONSUMED.labels(self._service, t) for t in topics}
        self._duplicate = {t: EVENTS_DUPLICATE.labels(self._service, t) for t in topics}

    async def run(self) -> None:
        """Consume until `stop()`; a graceful stop finishes the batch in hand and commits it."""
        await self._start_consumer()
        try:
            while not self._stopping.is_set():
                batch = await self._poll()
                if batch:
                    async with self._lock:
                        await self._handle_batch(batch)
                await self._record_lag()
        finally:
            try:
                await self._offsets_committed()
            finally:  # a stop that ran out of time cancels the commit under way, never the consumer's stop
                await self._consumer.stop()

    def stop(self) -> None:
        self._stopping.set()

    async def _poll(self) -> dict[TopicPartition, list[ConsumerRecord]]:
        """The next batch: what the client fetched in advance, and what reached the broker since.

        The client fetches ahead while a batch is applied, but sends no new fetch while anything it fetched is
        unread, so what it holds is what the broker had when the last batch began. Taking it empties the buffer
        and sends a fetch at once; waiting `consumer_gather_ms` for that fetch puts what arrived during the last
        batch in this one instead of the next (a whole batch sooner).

        A poll that had to wait got what the broker answered the moment it arrived, and nothing is left behind
        it to gather: it is applied at once (under light load each hop would otherwise wait the gather for
        nothing).
        """
        s = self._settings
        loop = asyncio.get_running_loop()
        asked = loop.time()
        batch: dict[TopicPartition, list[ConsumerRecord]] = await self._consumer.getmany(
            timeout_ms=s.consumer_poll_timeout_ms, max_records=s.consumer_batch_max)
        if loop.time() - asked >= _WAITED_S:
            return batch
        room = s.consumer_batch_max - sum(len(records) for records in batch.values())
        if batch and room > 0 and s.consumer_gather_ms > 0:
            more = await self._consumer.getmany(timeout_ms=s.consumer_gather_ms, max_records=room)
            for tp, records in more.items():
                batch[tp] = [*batch.get(tp, ()), *records]
        return batch

    async def _start_consumer(self) -> None:
        self._consumer.subscribe(list(self._physical_to_logical),
                                 listener=_WaitForBatch(self._lock, self._offsets_committed))
        await until_up(self._consumer.start, "consumer start", retry_on=KafkaError)
        self.ready.set()

    async def _handle_batch(self, batch: dict[TopicPartition, list[ConsumerRecord]]) -> None:
        records = [r for recs in batch.values() for r in recs]
        events, undecodable = self._decode(records)
        for record, error in undecodable:
            await self._dead_letter(record, error)
        try:
            if events:
                await self._apply_with_retries(events)
        finally:
            ended = time.time_ns()  # one batch, one end: each span lasted the whole batch
            for event in events:
                event.span.end(ended)
        offsets = {tp: recs[-1].offset + 1 for tp, recs in batch.items()}
        # The database has committed the batch (or dead-lettered what it could not apply): its offsets may go.
        # The commit goes on while the next batch is polled and applied; the one before it is finished first.
        await self._offsets_committed()
        self._committing = asyncio.create_task(self._commit(offsets), name=f"offset-commit-{self._group}")

    async def _commit(self, offsets: dict[TopicPartition, int]) -> None:
        try:
            await self._consumer.commit(offsets)
        except (CommitFailedError, IllegalStateError, RebalanceInProgressError, KafkaError) as exc:
            # The partitions moved to another member, or the broker is away: these messages will be
            # delivered again and the inbox will skip them, because the database transaction committed.
            log.warning("offset commit failed (%s); redelivery will be deduplicated", type(exc).__name__)

    async def _offsets_committed(self) -> None:
        """Wait for the offset commit under way, if any (before the next one, a rebalance, or a stop)."""
        committing, self._committing = self._committing, None
        if committing is not None:
            await committing

    def _decode(self, records: list[ConsumerRecord]) -> tuple[list[Event], list[tuple[ConsumerRecord, Exception]]]:
        events: list[Event] = []
        bad: list[tuple[ConsumerRecord, Exception]] = []
        started = time.time_ns()  # one batch, one start
        for record in records:
            topic = self._physical_to_logical.get(record.topic, record.topic)
            name = self._span_names.get(topic) or f"{topic} process"
            span = entry_spans.start(name, _parent_of(record), kind=SpanKind.CONSUMER, start_time=started, attributes={
                "messaging.system": "kafka",
                "messaging.destination.name": record.topic,
                "messaging.kafka.partition": record.partition,
                "messaging.kafka.offset": record.offset,
                "messaging.consumer.group.name": self._group,
            })
            try:
                envelope, data = Envelope.decode(record.value)
            except Exception as exc:  # any decoding failure makes the message poison, never the batch
                span.set_status(Status(StatusCode.ERROR, "undecodable"))
                span.end()
                bad.append((record, exc))
                continue
            set_attributes_if_kept(span, _described, envelope)
            events.append(Event(topic, envelope, data, record, span))
        return events, bad

    async def _apply(self, events: list[Event]) -> None:
        async with unit_of_work(self._db, self._unit_of_work) as uow:
            fresh_ids = await claim_new(uow.session, self._group, [e.envelope.event_id for e in events])
            fresh: list[Event] = []
            duplicates: Counter[str] = Counter()
            for event in events:
                if event.envelope.event_id in fresh_ids:
                    fresh_ids.discard(event.envelope.event_id)  # a duplicate inside one batch counts once
                    fresh.append(event)
                else:
                    duplicates[event.topic] += 1
            if fresh:
                await self._handler(uow, fresh)
        for topic, count in duplicates.items():
            (self._duplicate.get(topic) or EVENTS_DUPLICATE.labels(self._service, topic)).inc(count)
        for topic, count in Counter(event.topic for event in fresh).items():
            (self._consumed.get(topic) or EVENTS_CONSUMED.labels(self._service, topic)).inc(count)

    async def _apply_with_retries(self, events: list[Event]) -> None:
        try:
            await self._retrying(self._apply, events, self._settings.handler_max_attempts)
            return
        except Exception as exc:
            if len(events) == 1:
                await self._dead_letter(events[0].record, exc, events[0].span)
                return
            log.warning("batch of %d failed after retries (%s); isolating the failing events",
                        len(events), type(exc).__name__)
        for event in events:
            try:
                await self._retrying(self._apply, [event], 2)
            except Exception as exc:
                await self._dead_letter(event.record, exc, event.span)

    async def _retrying(self, fn: Callable[[list[Event]], Awaitable[None]], events: list[Event], attempts: int) -> None:
        """Bounded retries for handler errors; unbounded (with capped backoff) while infrastructure is away."""
        s = self._settings
        wait = wait_exponential_jitter(multiplier=s.handler_backoff_initial_s, max=s.handler_backoff_max_s)

        def infrastructure_away(state: RetryCallState) -> bool:  # the outer loop: an outage pauses, never DLQs
            exc = state.outcome.exception() if state.outcome else None
            return exc is not None and is_transient(exc) and not self._stopping.is_set()

        def note_outage(state: RetryCallState) -> None:
            HANDLER_RETRIES.labels(self._service).inc()
            exc = state.outcome.exception() if state.outcome else None
            log.warning("infrastructure error (%s); retrying the batch", type(exc).__name__)

        async for outage in AsyncRetrying(retry=infrastructure_away, wait=wait_fixed(s.handler_backoff_max_s),
                                          before_sleep=note_outage, reraise=True):
            with outage:
                async for attempt in AsyncRetrying(stop=stop_after_attempt(attempts), wait=wait, reraise=True,
                                                   retry=retry_if_exception(lambda e: not is_transient(e))):
                    with attempt:
                        if attempt.retry_state.attempt_number > 1:
                            HANDLER_RETRIES.labels(self._service).inc()
                        await fn(events)

    async def _dead_letter(self, record: ConsumerRecord, error: BaseException, span: Span | None = None) -> None:
        """Park a message that cannot be applied on `<topic>.dlq`, with the error type and message.

        Its transaction was rolled back, so the inbox does not hold it: the batch's offset commit moves past it,
        and the DLQ (with its original topic, partition and offset) is the only record of it."""
        logical = self._physical_to_logical.get(record.topic, record.topic)
        headers = {k: v.decode(errors="replace") for k, v in (record.headers or ())}
        headers.update({
            "dlq.error.type": type(error).__name__,
            "dlq.error.message": str(error)[:500],
            "dlq.original.topic": record.topic,
            "dlq.original.partition": str(record.partition),
            "dlq.original.offset": str(record.offset),
            "dlq.consumer.group": self._group,
        })
        key = record.key.decode(errors="replace") if record.key else ""
        letter = Message(self._settings.topic(dlq(logical)), record.value or b"", key, headers)
        # A dead letter must not be lost either: wait for the broker.
        await until_up(lambda: self._producer.publish([letter], self._settings.outbox_publish_timeout_s),
                       "dead-letter publish", retry_on=(KafkaError, TimeoutError))
        DEAD_LETTERS.labels(self._service, logical).inc()
        if span is not None:
            span.record_exception(error)
            span.set_status(Status(StatusCode.ERROR, "dead-lettered"))
        log.error("event dead-lettered", extra={"topic": logical, "offset": record.offset,
                                                 "error_type": type(error).__name__})

    async def _record_lag(self) -> None:
        """Publish consumer lag (high watermark minus position) at most once a second."""
        now = asyncio.get_running_loop().time()
        if now - self._lag_recorded_at < 1.0:
            return
        self._lag_recorded_at = now
        for tp in self._consumer.assignment():
            high = self._consumer.highwater(tp)
            if high is None:
                continue
            position = await self._consumer.position(tp)
            CONSUMER_LAG.labels(self._service, self._physical_to_logical.get(tp.topic, tp.topic),
                                str(tp.partition)).set(max(0, high - position))
