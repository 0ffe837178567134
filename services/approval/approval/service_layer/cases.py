"""Opening cases from calculations, and every action clerks, reviewers and the system take on them.

Handlers load the cases a batch or a request touches, let the aggregate (domain/case.py) move them, and have
the repository store what it produced; the unit of work commits the rows, the audit and the decisions together.
"""

import logging
import uuid
from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from opentelemetry import trace

from approval.adapters.metrics import CASE_ACTIONS, CASES_OPENED
from approval.domain.case import OPEN, Action, ApprovalRules, Case, CaseState, IllegalTransition
from approval.service_layer.people import record_calculations, record_people
from approval.service_layer.unit_of_work import ApprovalUnitOfWork
from shared.contracts import events as ev
from shared.errors import DomainError, NotFound
from shared.ids import new_id
from shared.messaging.consumer import Event
from shared.security.area import Area
from shared.security.roles import Role
from shared.telemetry import context_from, traceparent_of, tracer

log = logging.getLogger(__name__)
StartUnitOfWork = Callable[[], AbstractAsyncContextManager[ApprovalUnitOfWork]]
"""Opens a fresh unit of work (one transaction) for a command."""


def case_not_found() -> NotFound:
    # Outside the actor's area a case does not exist for them: the same 404 as an unknown id.
    return NotFound("case_not_found", "no such case in your area", field="case_id")


async def handle_events(uow: ApprovalUnitOfWork, rules: ApprovalRules, events: Sequence[Event]) -> None:
    """Consumer handler for assistance.calculated, transfer.settled and registry.person (one batch)."""
    await record_people(uow.people, [e for e in events if isinstance(e.data, ev.PersonsRecorded | ev.PersonRecorded)])
    calculated = [e for e in events if isinstance(e.data, ev.AssistanceCalculated)]
    await record_calculations(uow.calculations, calculated)
    await _open(uow, rules, [e for e in calculated
                             if isinstance(e.data, ev.AssistanceCalculated) and e.data.figures.assistance > 0])
    # A reversal before payment cancels; a recovery (an AssistanceReversed with a recovery_id is followed by its
    # RecoveryOpened) moves a paid case on.
    await _reverse(uow, [e for e in events if isinstance(e.data, ev.RecoveryOpened)
                         or isinstance(e.data, ev.AssistanceReversed) and e.data.recovery_id is None])
    await uow.cases.record_payments({e.data.case_id: e.data.status for e in events
                                     if isinstance(e.data, ev.TransferSettled)})


async def _open(uow: ApprovalUnitOfWork, rules: ApprovalRules, events: list[Event]) -> None:
    if not events:
        return
    now, cases, spans = datetime.now(UTC), [], {}
    for event in events:
        calc = event.data
        assert isinstance(calc, ev.AssistanceCalculated)
        case = Case.open(
            rules, now, id=new_id(), calculation_id=calc.calculation_id, settlement_id=calc.settlement_id,
            person_ref=event.envelope.person_ref, hospital_id=calc.hospital_id, district_code=calc.district_code,
            subdistrict_code=calc.subdistrict_code, category=calc.category.value, discharge_date=calc.discharge_date,
            amount=calc.figures.assistance, calculation=_as_json(event, calc),
            traceparent=traceparent_of(event.span))
        event.span.set_attribute("case.id", str(case.id))
        event.span.set_attribute("settlement.id", str(calc.settlement_id))
        cases.append(case)
        spans[case.id] = event.span
    opened = await uow.cases.add(cases)  # a calculation delivered again opens nothing
    CASES_OPENED.inc(len(opened))
    for case in opened:
        uow.publish(case, spans[case.id])


def _as_json(event: Event, calc: ev.AssistanceCalculated) -> dict[str, Any]:
    """The payload in its JSON form, as the case keeps it: the envelope's `data` as read from the wire when the
    event came in its current version (the form `model_dump(mode="json")` writes, validated on the way in: a
    second dump of 19 amounts cost 6-7 us a case), else the upcast model's dump."""
    data = event.envelope.data
    if (event.envelope.schema_version == ev.AssistanceCalculated.schema_version and data.keys() == _CALCULATED_KEYS
            and isinstance(figures := data["figures"], dict) and figures.keys() == _FIGURES_KEYS):
        return data
    return calc.model_dump(mode="json")


_CALCULATED_KEYS = ev.AssistanceCalculated.model_fields.keys()
_FIGURES_KEYS = ev.AssistanceFigures.model_fields.keys()


async def _reverse(uow: ApprovalUnitOfWork, events: list[Event]) -> None:
    if not events:
        return
    await uow.calculations.release([e.data.calculation_id for e in events
                                    if isinstance(e.data, ev.AssistanceReversed)])  # calculation gave them back
    cases = await uow.cases.by_calculation({e.data.calculation_id for e in events
                                            if isinstance(e.data, ev.AssistanceReversed | ev.RecoveryOpened)})
    now = datetime.now(UTC)
    for event in events:  # in the person's order: a cancellation before the recovery that follows it
        data = event.data
        assert isinstance(data, ev.AssistanceReversed | ev.RecoveryOpened)
        case = cases.get(data.calculation_id)
        if case is None:
            if isinstance(data, ev.RecoveryOpened):
                log.warning("recovery %s for calculation %s, which opened no case", data.recovery_id,
                            data.calculation_id)
            continue
        event.span.set_attribute("case.id", str(case.id))
        if isinstance(data, ev.AssistanceReversed):
            case.cancel(now)
        else:
            try:
                case.record_recovery(data.recovery_id, data.amount, data.opened_at, now)
            except IllegalTransition:  # never paid as far as this case knows: the recovery is recorded, the state stays
                log.error("recovery %s for case %s in state %s", data.recovery_id, case.id, case.state)
        uow.publish(case, event.span)
    await _save(uow, list(cases.values()))


async def _save(uow: ApprovalUnitOfWork, cases: list[Case]) -> None:
    for case in cases:
        for entry in case.audit:
            if entry.action != OPEN:
                CASE_ACTIONS.labels(entry.action, entry.to_state.value).inc()
    await uow.cases.save(cases)


@dataclass(frozen=True)
class Act:
    """A clerk's or reviewer's action on one case, within their area."""

    case_id: uuid.UUID
    action: Action
    actor: str
    party: Role
    area: Area
    reason: str | None = None
    comment: str | None = None


async def act_on_case(uow: ApprovalUnitOfWork, rules: ApprovalRules, command: Act) -> Case:
    """Check the area, then let the case apply the four-eyes rule and the state machine; store and announce."""
    case = await uow.cases.get(command.case_id)
    if case is None or not command.area.contains(case.district_code, case.subdistrict_code):
        raise case_not_found()
    # The action continues the settlement's trace (one settlement, one trace) and links the clerk's request.
    request = trace.get_current_span().get_span_context()
    with tracer.start_as_current_span(f"case {command.action.value}", context=context_from(case.traceparent),
                                      links=[trace.Link(request)] if request.is_valid else None) as span:
        span.set_attribute("case.id", str(case.id))
        span.set_attribute("settlement.id", str(case.settlement_id))
        case.apply(command.action, command.actor, command.party, datetime.now(UTC), rules=rules,
                   reason=command.reason, comment=command.comment)
        await _save(uow, [case])
        if case.state is CaseState.REJECTED:  # calculation gives a rejected case's share back to the ledger
            await uow.calculations.release([case.calculation_id])
        uow.publish(case, span)
    return case


@dataclass(frozen=True)
class BatchResult:
    case_id: uuid.UUID
    case: Case | None = None
    error: DomainError | None = None


class CaseService:
    """The commands the HTTP entrypoint runs, each in its own unit of work, and the consumer's handler."""

    def __init__(self, rules: ApprovalRules, start: StartUnitOfWork) -> None:
        self.rules, self._start = rules, start

    async def handle(self, uow: ApprovalUnitOfWork, events: list[Event]) -> None:
        await handle_events(uow, self.rules, events)

    async def act(self, command: Act) -> Case:
        async with self._start() as uow:
            return await act_on_case(uow, self.rules, command)

    async def approve_batch(self, case_ids: Sequence[uuid.UUID], actor: str, party: Role, area: Area,
                            comment: str | None) -> list[BatchResult]:
        """Approve many cases, each in its own transaction with its own result (a duplicate id counts once)."""
        results = []
        for case_id in dict.fromkeys(case_ids):
            try:
                case = await self.act(Act(case_id, Action.APPROVE, actor, party, area, comment=comment))
                results.append(BatchResult(case_id, case=case))
            except DomainError as exc:
                results.append(BatchResult(case_id, error=exc))
        return results

