"""Approval's unit of work: one transaction, its repositories, and the decisions it announces at commit."""

from typing import Any, Literal

from opentelemetry.trace import Span
from sqlalchemy.ext.asyncio import AsyncSession

from approval.adapters.repositories import CalculationRepository, CaseRepository, PersonRepository
from approval.domain.case import Case, CaseState, Decided
from shared.contracts import events as ev
from shared.contracts.envelope import Envelope
from shared.contracts.topics import CASE_DECIDED
from shared.messaging.outbox import Outgoing
from shared.money import to_money
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
        self.emit(*(Outgoing(CASE_DECIDED, _envelope(case, d), span) for d in decisions))


def _envelope(case: Case, d: Decided) -> Envelope:
    """CaseDecided's envelope; its payload written as JSON from the case (`decided_json`) when the time is UTC."""
    data = decided_json(case, d)
    if data is not None:
        return Envelope.wrap_json(ev.CaseDecided, data, person_ref=case.person_ref, producer="approval")
    return Envelope.wrap(ev.CaseDecided(
        case_id=case.id, calculation_id=case.calculation_id, settlement_id=case.settlement_id,
        decision=_DECISIONS[d.state], reason_code=d.reason, amount=case.amount, district_code=case.district_code,
        subdistrict_code=case.subdistrict_code, decided_at=d.at), person_ref=case.person_ref, producer="approval")


def decided_json(case: Case, d: Decided) -> dict[str, Any] | None:
    """What `CaseDecided(...).model_dump(mode="json")` writes, the same keys in the same order, without building
    and dumping the model: ids as `str()`, the amount rounded as Money rounds it, the time in ISO form with `Z`
    (pydantic's form of a UTC time). None for a time not in UTC (the model then writes it).
    `test_a_decision_is_written_as_its_model_dumps_it` holds the two to each other."""
    at = d.at.isoformat()
    if not at.endswith("+00:00"):
        return None
    return {"case_id": str(case.id), "calculation_id": str(case.calculation_id),
            "settlement_id": str(case.settlement_id), "decision": _DECISIONS[d.state], "reason_code": d.reason,
            "amount": str(to_money(case.amount)), "district_code": case.district_code,
            "subdistrict_code": case.subdistrict_code, "decided_at": f"{at[:-6]}Z"}
