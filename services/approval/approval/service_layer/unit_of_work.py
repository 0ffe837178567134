"""Approval's unit of work: one transaction, its repositories, and the decisions it announces at commit."""

from typing import Literal

from opentelemetry.trace import Span
from sqlalchemy.ext.asyncio import AsyncSession

from approval.adapters.repositories import CalculationRepository, CaseRepository, PersonRepository
from approval.domain.case import Case, CaseState
from shared.contracts import events as ev
from shared.contracts.envelope import Envelope
from shared.contracts.topics import CASE_DECIDED
from shared.messaging.outbox import Outgoing
from shared.settings import ServiceSettings
from shared.unit_of_work import UnitOfWork

_DECISIONS: dict[CaseState, Literal["approved", "rejected", "cancelled"]] = {
    CaseState.APPROVED: "approved", CaseState.REJECTED: "rejected", CaseState.CANCELLED: "cancelled"}


class ApprovalUnitOfWork(UnitOfWork):
    def __init__(self, session: AsyncSession, settings: ServiceSettings) -> None:
        super().__init__(session, settings)
        self.cases = CaseRepository(session)
        self.people = PersonRepository(session)
        self.calculations = CalculationRepository(session)

    def publish(self, case: Case, span: Span | None) -> None:
        """Announce the decisions the case took (CaseDecided, keyed by person), in the trace of `span`."""
        decisions, case.events = case.events, []
        self.emit(*(Outgoing(CASE_DECIDED, Envelope.wrap(ev.CaseDecided(
            case_id=case.id, calculation_id=case.calculation_id, settlement_id=case.settlement_id,
            decision=_DECISIONS[d.state], reason_code=d.reason, amount=case.amount, district_code=case.district_code,
            subdistrict_code=case.subdistrict_code, decided_at=d.at), person_ref=case.person_ref,
            producer="approval"), span) for d in decisions))
