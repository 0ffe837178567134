"""Transactional outbox: `add_events` inside the business transaction, `OutboxRelay` publishes after commit."""

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass

import orjson
from opentelemetry import trace
from opentelemetry.trace import Span
from sqlalchemy import Text, column, delete, select, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from shared.contracts.envelope import Envelope
from shared.db import Database, as_arrays, insert_arrays, signal_after_commit
from shared.messaging.kafka import KafkaProducer, Message
from shared.messaging.tables import OUTBOX_TABLE, InboxEntry, OutboxMessage
from shared.metrics import OUTBOX_BACKLOG, OUTBOX_OLDEST, OUTBOX_PUBLISHED
from shared.settings import ServiceSettings
from shared.telemetry import trace_headers
from shared.worker import Wakeup, run_worker

log = logging.getLogger(__name__)
_RELAY_LOCK_KEY = 0x6D656473  # one relay per database publishes at a time, which keeps per-key order
OUTBOX_WRITTEN = "outbox.written"
_OUTBOX_COLUMNS = ("event_id", "topic", "key", "payload", "headers")
# In the events' order, so the relay publishes them in it (a serial id follows the arrays' order).
_INSERT_OUTBOX = insert_arrays(OUTBOX_TABLE, _OUTBOX_COLUMNS)
# The relay's pass in one round trip: the lock (an InitPlan, evaluated once before any row is read: a relay that
# is not the leader reads nothing) and the next batch by the primary key, deleted and returned. `= ANY(ARRAY(..))`
# keeps the delete an index scan however long the outbox (`IN (..)` planned a seq scan and a hash join). Deleting
# instead of marking writes no new row version (payload and index entries again) and leaves nothing to purge.
# Another relay of the database takes the lock only once the leader has committed or rolled back; a row its
# snapshot still shows but the leader deleted is then skipped by its DELETE, so two relays never publish at once
# and a key's events go out in id order.
_TAKE = text(
    f"DELETE FROM {OUTBOX_TABLE.name} WHERE id = ANY(ARRAY(SELECT id FROM {OUTBOX_TABLE.name} "
    f"WHERE (SELECT pg_try_advisory_xact_lock({_RELAY_LOCK_KEY})) ORDER BY id LIMIT :limit)) "
    "RETURNING id, topic, key, payload, headers::text AS headers"
).columns(*(OUTBOX_TABLE.c[c] for c in ("id", "topic", "key", "payload")), column("headers", Text))
# The headers come back as their text and are read here by orjson: the `json` column's codec on the connection is
# the standard library's json.loads (SQLAlchemy's default for every JSON column), 3-4 us a row against 0.3.


@dataclass(frozen=True)
class Outgoing:
    """An event to emit: a logical topic and its envelope; `cause` is the span of what caused it."""

    topic: str
    envelope: Envelope
    cause: Span | None = None


async def add_events(session: AsyncSession, settings: ServiceSettings, events: Sequence[Outgoing]) -> None:
    """Write events to the outbox in the caller's transaction, in order (one INSERT over arrays); nothing is sent."""
    if not events:
        return
    rows = [
        {
            "event_id": e.envelope.event_id,
            "topic": settings.topic(e.topic),
            "key": e.envelope.person_ref,
            "payload": e.envelope.to_bytes(),
            "headers": orjson.dumps(trace_headers(e.cause or trace.get_current_span())).decode(),
        }
        for e in events
    ]
    await session.execute(_INSERT_OUTBOX, as_arrays(rows, _OUTBOX_COLUMNS))
    signal_after_commit(session, OUTBOX_WRITTEN)


class OutboxRelay:
    """Publishes unsent outbox rows in id order, deleting them in the same transaction.

    One statement a pass takes the relay lock and deletes the next batch, returning it (`_TAKE`); the rows are
    published and the transaction commits only once Kafka has acknowledged all of them. A failed publish rolls
    the delete back, and a crash after publishing and before the commit leaves the rows to be published again
    (consumers dedupe by event_id). Every row still in the outbox is therefore one not yet known to be published.
    It is woken by every local commit that wrote outbox rows; `outbox_idle_poll_s` is the fallback that finds
    rows written by other replicas of the service (or left by a crash).
    """

    def __init__(self, db: Database, producer: KafkaProducer, settings: ServiceSettings) -> None:
        self._db = db
        self._producer = producer
        self._settings = settings
        self._stopping = asyncio.Event()
        self._wake = Wakeup()
        db.on_commit(OUTBOX_WRITTEN, self.wake)

    def wake(self) -> None:
        """Ask for a publish pass now (called after a local commit wrote outbox rows)."""
        self._wake.set()

    async def publish_once(self) -> int:
        """Publish one batch; returns how many rows were published."""
        async with self._db.transaction() as session:
            rows = sorted((await session.execute(_TAKE, {"limit": self._settings.outbox_batch_max})).all(),
                          key=lambda row: int(row.id))
            if not rows:
                return 0
            await self._producer.publish([Message(row.topic, row.payload, row.key, orjson.loads(row.headers))
                                          for row in rows],
                                         self._settings.outbox_publish_timeout_s)
        OUTBOX_PUBLISHED.labels(self._settings.service_name).inc(len(rows))
        return len(rows)

    async def purge(self, inbox_older_than_days: int = 7) -> None:
        """Forget old inbox entries (redeliveries older than that cannot happen) and gauge the outbox's backlog."""
        async with self._db.transaction() as session:
            await session.execute(
                delete(InboxEntry).where(
                    col(InboxEntry.received_at) < text(f"now() - interval '{int(inbox_older_than_days)} days'")
                )
            )
            backlog, oldest_s = (await session.execute(
                select(text("count(*)"), text("coalesce(extract(epoch from now() - min(created_at)), 0)"))
                .select_from(OutboxMessage)
            )).one()
        OUTBOX_BACKLOG.labels(self._settings.service_name).set(backlog or 0)
        OUTBOX_OLDEST.labels(self._settings.service_name).set(float(oldest_s or 0))

    async def run(self) -> None:
        """Publish until stopped; a failing pass backs off and retries (shared.worker), nothing is dropped."""
        loop = asyncio.get_running_loop()
        last_purge = 0.0

        async def step() -> bool:
            nonlocal last_purge
            published = await self.publish_once()
            if loop.time() - last_purge > 60:
                await self.purge()
                last_purge = loop.time()
            return published >= self._settings.outbox_batch_max

        await run_worker("outbox relay", step, self._stopping, idle_s=self._settings.outbox_idle_poll_s,
                         wakeup=self._wake)

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()
