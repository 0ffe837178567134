"""Opening cases from calculations, and every action clerks, reviewers and the system take on them."""

import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

from opentelemetry import trace
from opentelemetry.trace import Span
from sqlalchemy import insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from approval.adapters.metrics import CASE_ACTIONS, CASES_OPENED
from approval.adapters.tables import AuditRecord, CaseRecord
from approval.domain.case import (
    Action,
    CaseState,
    IllegalTransition,
    MissingReason,
    RejectReason,
    Role,
    is_final,
    transition,
)
from approval.service_layer.people import record_calculations, record_people, release_calculations
from shared.contracts import events as ev
from shared.contracts.envelope import Envelope
from shared.contracts.topics import CASE_DECIDED
from shared.messaging.consumer import Event
from shared.messaging.outbox import Outgoing, add_events
from shared.problems import ProblemError
from shared.security.area import Area
from shared.settings import ServiceSettings
from shared.telemetry import context_from, traceparent_of, tracer

SYSTEM = "system"
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Policy:
    """How this deployment approves: the optional skip-district threshold and the bench-only auto-approval."""

    skip_district_threshold: Decimal | None = None
    auto_approve: bool = False


def _decided(case: CaseRecord, state: CaseState, reason: str | None, span: Span | None) -> Outgoing:
    data = ev.CaseDecided(case_id=case.id, calculation_id=case.calculation_id, settlement_id=case.settlement_id,
                          decision=state.value, reason_code=reason, amount=case.amount,
                          district_code=case.district_code, subdistrict_code=case.subdistrict_code,
                          decided_at=datetime.now(UTC))
    return Outgoing(CASE_DECIDED, Envelope.wrap(data, person_ref=case.person_ref, producer="approval"), span)


def _audit(case_id: uuid.UUID, actor: str, role: str, action: str, from_state: str | None, to_state: str,
           reason: str | None = None, comment: str | None = None) -> dict[str, object]:
    return {"case_id": case_id, "actor": actor, "role": role, "action": action, "from_state": from_state,
            "to_state": to_state, "reason": reason, "comment": comment}


async def handle_events(session: AsyncSession, settings: ServiceSettings, policy: Policy,
                        events: Sequence[Event]) -> None:
    """Consumer handler for assistance.calculated, transfer.settled and registry.person."""
    await record_people(session, [e for e in events if isinstance(e.data, ev.PersonRecorded)])
    await record_calculations(session, [e for e in events if isinstance(e.data, ev.AssistanceCalculated)])
    await _open(session, settings, policy,
                [e for e in events if isinstance(e.data, ev.AssistanceCalculated) and e.data.figures.assistance > 0])
    for event in events:
        match event.data:
            case ev.AssistanceReversed(recovery_id=None):  # before payment: calculation gave the ledger back
                await release_calculations(session, [event.data.calculation_id])
                await _cancel(session, settings, event)
            case ev.RecoveryOpened():  # (an AssistanceReversed with a recovery_id is followed by its RecoveryOpened)
                await _recovery_opened(session, settings, event)
    payments = {e.data.case_id: e.data.status for e in events if isinstance(e.data, ev.TransferSettled)}
    if payments:
        await session.execute(update(CaseRecord), [{"id": cid, "payment_status": s} for cid, s in payments.items()])
    failed = [e.data.case_id for e in events if isinstance(e.data, ev.TransferSettled) and e.data.status == "failed"]
    if failed:
        await session.execute(update(CaseRecord).where(CaseRecord.id.in_(failed))  # type: ignore[attr-defined]
                              .values(payment_failures=CaseRecord.payment_failures + 1))


async def _open(session: AsyncSession, settings: ServiceSettings, policy: Policy, events: list[Event]) -> None:
    if not events:
        return
    rows, audits, outgoing = [], [], []
    initial = CaseState.APPROVED if policy.auto_approve else CaseState.AWAITING_SUBDISTRICT
    for event in events:
        calc = event.data
        assert isinstance(calc, ev.AssistanceCalculated)
        case_id = uuid.uuid4()
        event.span.set_attribute("case.id", str(case_id))
        event.span.set_attribute("settlement.id", str(calc.settlement_id))
        row = CaseRecord(
            id=case_id, calculation_id=calc.calculation_id, settlement_id=calc.settlement_id,
            person_ref=event.envelope.person_ref, hospital_id=calc.hospital_id, district_code=calc.district_code,
            subdistrict_code=calc.subdistrict_code, category=calc.category.value, discharge_date=calc.discharge_date,
            amount=calc.figures.assistance, state=initial.value, calculation=calc.model_dump(mode="json"),
            traceparent=traceparent_of(event.span),
        )
        rows.append(row)
        audits.append(_audit(case_id, SYSTEM, SYSTEM, "open", None, CaseState.AWAITING_SUBDISTRICT.value))
        if policy.auto_approve:
            audits.append(_audit(case_id, SYSTEM, SYSTEM, Action.APPROVE.value, CaseState.AWAITING_SUBDISTRICT.value,
                                 initial.value, comment="bench auto-approval"))
            outgoing.append(_decided(row, initial, None, event.span))
    values = [r.model_dump() for r in rows]
    for v in values:
        v.pop("created_at", None), v.pop("updated_at", None), v.pop("payment_status", None)
        v.pop("payment_failures", None)
    opened = set((await session.execute(
        pg_insert(CaseRecord).on_conflict_do_nothing(index_elements=["calculation_id"]).returning(CaseRecord.id),
        values)).scalars())
    audits = [a for a in audits if a["case_id"] in opened]
    CASES_OPENED.inc(len(opened))
    if audits:
        await session.execute(insert(AuditRecord), audits)
    opened_ids = {str(i) for i in opened}
    await add_events(session, settings, [o for o in outgoing if o.envelope.data["case_id"] in opened_ids])


async def _cancel(session: AsyncSession, settings: ServiceSettings, event: Event) -> None:
    """A hospital reversal cancels the case, even an approved one: disbursement stops it if not yet sent."""
    reversal = event.data
    assert isinstance(reversal, ev.AssistanceReversed)
    case = (await session.execute(select(CaseRecord).where(CaseRecord.calculation_id == reversal.calculation_id)
                                  .with_for_update())).scalar_one_or_none()
    if case is None or is_final(CaseState(case.state)) and case.state != CaseState.APPROVED:
        return
    event.span.set_attribute("case.id", str(case.id))
    await _apply(session, settings, case, Action.CANCEL, SYSTEM, Role.SYSTEM, Policy(), "settlement_reversed",
                 "reversed by the hospital", event.span)


async def _recovery_opened(session: AsyncSession, settings: ServiceSettings, event: Event) -> None:
    """The money was paid and the hospital reversed the settlement: the case shows it, with the recovery."""
    recovery = event.data
    assert isinstance(recovery, ev.RecoveryOpened)
    case = (await session.execute(select(CaseRecord).where(CaseRecord.calculation_id == recovery.calculation_id)
                                  .with_for_update())).scalar_one_or_none()
    if case is None:
        log.warning("recovery %s for calculation %s, which opened no case", recovery.recovery_id,
                    recovery.calculation_id)
        return
    event.span.set_attribute("case.id", str(case.id))
    await session.execute(update(CaseRecord).where(CaseRecord.id == case.id).values(
        recovery_id=recovery.recovery_id, recovery_amount=recovery.amount, recovery_opened_at=recovery.opened_at))
    if case.state == CaseState.REVERSED_AFTER_PAYMENT:
        return
    try:
        await _apply(session, settings, case, Action.OPEN_RECOVERY, SYSTEM, Role.SYSTEM, Policy(),
                     "settlement_reversed", f"reversed by the hospital after payment; {recovery.amount:.2f} to recover",
                     event.span)
    except IllegalTransition:  # never paid as far as this case knows: the recovery is recorded, the state stays
        log.error("recovery %s for case %s in state %s", recovery.recovery_id, case.id, case.state)


async def _apply(session: AsyncSession, settings: ServiceSettings, case: CaseRecord, action: Action, actor: str,
                 role: Role, policy: Policy, reason: str | None, comment: str | None, span: Span | None) -> CaseState:
    old = CaseState(case.state)
    new = transition(old, action, role, amount=case.amount, skip_district_threshold=policy.skip_district_threshold,
                     reason=RejectReason(reason) if action is Action.REJECT and reason else None, comment=comment)
    await session.execute(update(CaseRecord).where(CaseRecord.id == case.id)
                          .values(state=new.value, updated_at=datetime.now(UTC)))
    await session.execute(insert(AuditRecord).values(**_audit(case.id, actor, role.value, action.value, old.value,
                                                              new.value, reason, comment)))
    CASE_ACTIONS.labels(action.value, new.value).inc()
    if new is CaseState.REJECTED:  # calculation gives a rejected case's share back to the ledger
        await release_calculations(session, [case.calculation_id])
    if new in (CaseState.APPROVED, CaseState.REJECTED, CaseState.CANCELLED) and new != old:
        await add_events(session, settings, [_decided(case, new, reason, span)])
    case.state = new.value
    return new


async def act_on_case(session: AsyncSession, settings: ServiceSettings, policy: Policy, case_id: uuid.UUID,
                      action: Action, actor: str, role: Role, area: Area,
                      reason: str | None = None, comment: str | None = None) -> CaseRecord:
    """A clerk's or reviewer's action, checked against their area, the four-eyes rule and the state machine."""
    case = (await session.execute(select(CaseRecord).where(CaseRecord.id == case_id).with_for_update())
            ).scalar_one_or_none()
    # Outside the actor's area a case does not exist for them: the same 404 as an unknown id.
    not_found = ProblemError(404, "case_not_found", "no such case in your area", field="case_id")
    if case is None:
        raise not_found
    area.require(case.district_code, case.subdistrict_code, not_found)
    if action is Action.APPROVE:
        # Four eyes: whoever approved at one level never approves the same case at another (the row lock above
        # makes the check and the approval one step even when both requests come at once).
        earlier = await session.scalar(select(AuditRecord.role).where(
            AuditRecord.case_id == case.id, AuditRecord.actor == actor, AuditRecord.action == Action.APPROVE.value,
            AuditRecord.role != role.value).limit(1))
        if earlier is not None:
            raise ProblemError(403, "four_eyes_required", f"you approved this case as {earlier}; another person "
                               "must approve it at this level", field="case_id")
    # The action continues the settlement's trace (one settlement, one trace) and links the clerk's request.
    request = trace.get_current_span().get_span_context()
    with tracer.start_as_current_span(f"case {action.value}", context=context_from(case.traceparent),
                                      links=[trace.Link(request)] if request.is_valid else None) as span:
        span.set_attribute("case.id", str(case.id))
        span.set_attribute("settlement.id", str(case.settlement_id))
        try:
            await _apply(session, settings, case, action, actor, role, policy, reason, comment, span)
        except IllegalTransition as exc:
            raise ProblemError(409, "illegal_transition", f"cannot {action.value} a case that is {case.state}",
                               field="state") from exc
        except MissingReason as exc:
            raise ProblemError(422, "reason_required", str(exc), field="reason" if action is Action.REJECT
                               else "comment") from exc
    return case
