"""Eligibility's unit of work: one transaction, its repositories, and the events the change emits."""

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from opentelemetry.trace import Span
from sqlalchemy.ext.asyncio import AsyncSession

from eligibility.adapters.repositories import (
    ContactRepository,
    PolicyTermsRepository,
    RegistryRepository,
    ScreeningRepository,
)
from shared.contracts.envelope import Envelope
from shared.contracts.events import MAX_REGISTRY_EVENT_BYTES, PERSONS_PER_EVENT, EventData, RegistryChunk
from shared.contracts.topics import REGISTRY_KEY
from shared.ids import new_id
from shared.messaging.outbox import Outgoing
from shared.settings import ServiceSettings
from shared.unit_of_work import UnitOfWork

PRODUCER = "eligibility"


class EligibilityUnitOfWork(UnitOfWork):
    def __init__(self, session: AsyncSession, settings: ServiceSettings) -> None:
        super().__init__(session, settings)
        self.registry = RegistryRepository(session)
        self.contacts = ContactRepository(session)
        self.screenings = ScreeningRepository(session)
        self.terms = PolicyTermsRepository(session)

    def publish(self, topic: str, person_ref: str, data: EventData, cause: Span | None = None) -> None:
        """Emit one of eligibility's events about a person (or region) at commit."""
        self.emit(Outgoing(topic, Envelope.wrap(data, person_ref=person_ref, producer=PRODUCER), cause))

    def publish_json(self, topic: str, person_ref: str, event_type: type[EventData], data: dict[str, Any],
                     cause: Span | None = None) -> None:
        """`publish` of a payload already in its JSON form (`event_type`'s `model_dump(mode="json")`, the same
        keys in the same order; the caller's tests hold it to the model)."""
        self.emit(Outgoing(topic, Envelope.wrap_json(event_type, data, person_ref=person_ref, producer=PRODUCER),
                           cause))

    def publish_chunked(self, topic: str, chunk: type[RegistryChunk], entries: Sequence[dict[str, Any]]) -> int:
        """Emit many persons' registry facts in as few `chunk` events as fit (docs/decisions/0033): at most
        PERSONS_PER_EVENT each, halved while an envelope would pass MAX_REGISTRY_EVENT_BYTES, all under
        REGISTRY_KEY so the topic keeps one order. Returns how many events.

        `entries` are already in their JSON form (what the chunk's entry model dumps: dates as ISO strings), so
        an event costs no model a person; the tests hold what is sent to the model."""
        return sum(self._emit_chunk(topic, chunk, list(entries[start:start + PERSONS_PER_EVENT]))
                   for start in range(0, len(entries), PERSONS_PER_EVENT))

    def _emit_chunk(self, topic: str, chunk: type[RegistryChunk], part: list[dict[str, Any]]) -> int:
        envelope = Envelope(event_id=new_id(), event_type=chunk.__name__, schema_version=chunk.schema_version,
                            occurred_at=datetime.now(UTC), producer=PRODUCER, person_ref=REGISTRY_KEY,
                            data={chunk.ENTRIES: part})
        if len(part) > 1 and len(envelope.to_bytes()) > MAX_REGISTRY_EVENT_BYTES:
            half = len(part) // 2
            return self._emit_chunk(topic, chunk, part[:half]) + self._emit_chunk(topic, chunk, part[half:])
        self.emit(Outgoing(topic, envelope))
        return 1
