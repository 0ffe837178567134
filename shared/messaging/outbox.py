"""Transactional outbox: `add_events` inside the business transaction, `OutboxRelay` publishes after commit."""

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass

import orjson
from opentelemetry import trace
from opentelemetry.trace import Span
from sqlalchemy import delete, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from shared.contracts.envelope import Envelope
from shared.db import Database, as_arrays, in_array, insert_arrays, signal_after_commit
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
    """Publishes unsent outbox rows in id order, then marks them sent.

    A crash after publishing and before marking re-publishes on restart: consumers dedupe by event_id.
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
            leader = await session.scalar(select(text(f"pg_try_advisory_xact_lock({_RELAY_LOCK_KEY})")))
            if not leader:
                return 0
            rows = (
                await session.execute(
                    select(col(OutboxMessage.id), col(OutboxMessage.topic), col(OutboxMessage.key),
                           col(OutboxMessage.payload), col(OutboxMessage.headers))
                    .where(col(OutboxMessage.published_at).is_(None))
                    .order_by(col(OutboxMessage.id))
                    .limit(self._settings.outbox_batch_max)
                )
            ).all()
            if not rows:
                return 0
            await self._producer.publish([Message(row.topic, row.payload, row.key, row.headers) for row in rows],
                                         self._settings.outbox_publish_timeout_s)
            await self._mark_published(session, [row.id for row in rows])
        OUTBOX_PUBLISHED.labels(self._settings.service_name).inc(len(rows))
        return len(rows)

    async def _mark_published(self, session: AsyncSession, ids: list[int]) -> None:
        await session.execute(
            update(OutboxMessage)
            .where(in_array(col(OutboxMessage.id), ids))
            .values(published_at=text("now()"))
        )

    async def purge(self, published_older_than_s: int = 3600, inbox_older_than_days: int = 7) -> None:
        """Forget published outbox rows and old inbox entries (redeliveries older than that cannot happen)."""
        async with self._db.transaction() as session:
            await session.execute(
                delete(OutboxMessage).where(
                    col(OutboxMessage.published_at) < text(f"now() - interval '{int(published_older_than_s)} seconds'")
                )
            )
            await session.execute(
                delete(InboxEntry).where(
                    col(InboxEntry.received_at) < text(f"now() - interval '{int(inbox_older_than_days)} days'")
                )
            )
            backlog, oldest_s = (await session.execute(
                select(text("count(*)"), text("coalesce(extract(epoch from now() - min(created_at)), 0)"))
                .select_from(OutboxMessage).where(col(OutboxMessage.published_at).is_(None))
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
