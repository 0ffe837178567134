"""Calculation's unit of work: one transaction, its repositories, and the events of the calculations it changed."""

from opentelemetry.trace import Span
from sqlalchemy.ext.asyncio import AsyncSession

from calculation.adapters.repositories import CalculationRepository, LedgerRepository, PolicyRepository
from calculation.domain.calculation import Calculation
from calculation.domain.wire import calculated_json
from shared.contracts import events as ev
from shared.contracts.envelope import Envelope
from shared.contracts.topics import ASSISTANCE_CALCULATED
from shared.messaging.outbox import Outgoing
from shared.settings import ServiceSettings
from shared.unit_of_work import UnitOfWork

PRODUCER = "calculation"


class CalculationUnitOfWork(UnitOfWork):
    def __init__(self, session: AsyncSession, settings: ServiceSettings) -> None:
        super().__init__(session, settings)
        self.policies = PolicyRepository(session)
        self.ledgers = LedgerRepository(session)
        self.calculations = CalculationRepository(session)

    def collect(self, calculation: Calculation, span: Span | None = None) -> int:
        """Emit the events the calculation raised (on assistance.calculated, keyed by its person), once; how many."""
        events, calculation.events = calculation.events, []
        self.emit(*(Outgoing(ASSISTANCE_CALCULATED, _envelope(e, calculation.person_ref), span) for e in events))
        return len(events)


def _envelope(event: ev.EventData, person_ref: str) -> Envelope:
    """The event's envelope; an AssistanceCalculated's payload written from its fields (`domain.wire`)."""
    if isinstance(event, ev.AssistanceCalculated):
        return Envelope.wrap_json(ev.AssistanceCalculated, calculated_json(event), person_ref=person_ref,
                                  producer=PRODUCER)
    return Envelope.wrap(event, person_ref=person_ref, producer=PRODUCER)
