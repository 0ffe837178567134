"""Inbox dedupe: an event is applied by a consumer group at most once, decided inside its transaction."""

from collections.abc import Sequence
from uuid import UUID

from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from shared.messaging.tables import InboxEntry


async def claim_new(session: AsyncSession, consumer: str, event_ids: Sequence[UUID]) -> set[UUID]:
    """Record the ids in the inbox; returns those not seen before (one bulk INSERT ... ON CONFLICT DO NOTHING)."""
    unique = list(dict.fromkeys(event_ids))
    if not unique:
        return set()
    # executemany form: the statement compiles once and is cached (a .values([...]) list compiles per call).
    stmt = insert(InboxEntry).on_conflict_do_nothing().returning(col(InboxEntry.event_id))
    rows = [{"consumer": consumer, "event_id": eid} for eid in unique]
    return set((await session.execute(stmt, rows)).scalars().all())
