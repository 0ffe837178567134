"""Eligibility's unit of work: one transaction, its repositories, and the events the change emits."""

from opentelemetry.trace import Span
from sqlalchemy.ext.asyncio import AsyncSession

from eligibility.adapters.repositories import (
    ContactRepository,
    PolicyTermsRepository,
    RegistryRepository,
    ScreeningRepository,
)
from shared.contracts.envelope import Envelope
from shared.contracts.events import EventData
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
