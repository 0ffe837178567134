"""Inbox dedupe: an event is applied by a consumer group at most once, decided inside its transaction."""

from collections.abc import Sequence
from uuid import UUID

from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from shared.messaging.tables import INBOX_TABLE

# executemany form on the Core table: compiled once and cached (a .values([...]) list compiles per call).
_CLAIM = insert(INBOX_TABLE).on_conflict_do_nothing().returning(INBOX_TABLE.c.event_id)


async def claim_new(session: AsyncSession, consumer: str, event_ids: Sequence[UUID]) -> set[UUID]:
    """Record the ids in the inbox; returns those not seen before (one bulk INSERT ... ON CONFLICT DO NOTHING)."""
    unique = list(dict.fromkeys(event_ids))
    if not unique:
        return set()
    rows = [{"consumer": consumer, "event_id": eid} for eid in unique]
    return set((await session.execute(_CLAIM, rows)).scalars().all())
