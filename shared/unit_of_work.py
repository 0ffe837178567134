"""The unit of work: one database transaction, and the events the change raised, written to the outbox in it.

Service layers change state through a unit of work and never commit themselves; the consumer runner and the
HTTP entrypoints open one per batch or per request. Events are collected while the change runs (`emit`) and
written to the outbox as one bulk INSERT just before the commit, so new events, the changed rows and (for a
consumer) the inbox claim of what caused them commit together or not at all.

Each service subclasses `UnitOfWork` to add its typed repositories, built on `session`.
"""

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from shared.db import Database
from shared.messaging.outbox import Outgoing, add_events
from shared.settings import ServiceSettings


class UnitOfWork:
    """The session repositories query with, and the events waiting for the commit."""

    def __init__(self, session: AsyncSession, settings: ServiceSettings) -> None:
        self.session = session
        self.settings = settings
        self._events: list[Outgoing] = []

    def emit(self, *events: Outgoing) -> None:
        """Publish `events` if, and only if, this unit of work commits."""
        self._events.extend(events)

    @property
    def pending(self) -> tuple[Outgoing, ...]:
        """The events emitted so far (for tests and for handlers that want to count them)."""
        return tuple(self._events)

    async def flush_events(self) -> None:
        """Write the collected events to the outbox (one bulk INSERT); called just before the commit."""
        events, self._events = self._events, []
        await add_events(self.session, self.settings, events)


U = TypeVar("U", bound=UnitOfWork)
UnitOfWorkFactory = Callable[[AsyncSession, ServiceSettings], U]


@asynccontextmanager
async def unit_of_work(db: Database, factory: UnitOfWorkFactory[U]) -> AsyncIterator[U]:
    """A fresh unit of work in one transaction: committed with its events on success, rolled back on any error."""
    async with db.transaction() as session:
        uow = factory(session, db.settings)
        yield uow
        await uow.flush_events()
