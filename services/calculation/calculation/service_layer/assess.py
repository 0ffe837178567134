"""Applying the money rule to eligible settlements, in each person's event order, against their ledger."""

import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

from opentelemetry.trace import Span
from sqlalchemy import delete, select, tuple_, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from calculation.adapters.metrics import CALCULATIONS, RECOVERIES
from calculation.adapters.tables import Calculation, Ledger, Recovery
from calculation.domain.money_rule import (
    AssistanceCalculation,
    LedgerPosition,
    SettlementFigures,
    calculate,
    release,
)
from calculation.domain.policy import Policy, select_policy
from calculation.service_layer.policies import load_policies
from shared.contracts import events as ev
from shared.contracts.envelope import Envelope
from shared.contracts.topics import ASSISTANCE_CALCULATED
from shared.messaging.consumer import Event
from shared.messaging.outbox import Outgoing, add_events
from shared.money import ZERO
from shared.settings import ServiceSettings
from shared.telemetry import tracer

log = logging.getLogger(__name__)


class Ledgers:
    """The (person, year) ledgers a batch touches, locked and loaded at once, written back at once."""

    def __init__(self, rows: dict[tuple[str, int], LedgerPosition]) -> None:
        self._rows = rows
        self._dirty: set[tuple[str, int]] = set()

    @classmethod
    async def lock(cls, session: AsyncSession, keys: set[tuple[str, int]]) -> "Ledgers":
        if not keys:
            return cls({})
        found = (await session.execute(
            select(Ledger).where(tuple_(Ledger.person_ref, Ledger.year).in_(list(keys))).with_for_update()
        )).scalars()
        rows = {(r.person_ref, r.year): LedgerPosition(r.year, r.deductible_used, r.committed) for r in found}
        for person_ref, year in keys:
            rows.setdefault((person_ref, year), LedgerPosition(year, ZERO, ZERO))
        return cls(rows)

    def get(self, person_ref: str, year: int) -> LedgerPosition:
        return self._rows[(person_ref, year)]

    def put(self, person_ref: str, position: LedgerPosition) -> None:
        self._rows[(person_ref, position.year)] = position
        self._dirty.add((person_ref, position.year))

    async def save(self, session: AsyncSession) -> None:
        if not self._dirty:
            return
        values = [{"person_ref": p, "year": y, "deductible_used": self._rows[(p, y)].deductible_used,
                   "committed": self._rows[(p, y)].committed} for p, y in self._dirty]
        stmt = insert(Ledger)
        await session.execute(stmt.on_conflict_do_update(
            index_elements=[Ledger.person_ref, Ledger.year],
            set_={"deductible_used": stmt.excluded.deductible_used, "committed": stmt.excluded.committed}), values)


def _figures(s: ev.SettlementReceived) -> SettlementFigures:
    return SettlementFigures(
        policy_scope_amount=s.policy_scope_amount, basic_insurance_paid=s.basic_insurance_paid,
        critical_illness_paid=s.critical_illness_paid, visit_type=s.visit_type.value,
        hospital_level=s.hospital_level, discharge_date=s.discharge_date,
    )


def figures_of(s: ev.SettlementReceived, calc: AssistanceCalculation) -> ev.AssistanceFigures:
    """The figures as they travel and are shown: the settlement's inputs, then the rule's every step."""
    return ev.AssistanceFigures(
        policy_scope_amount=s.policy_scope_amount, basic_insurance_paid=s.basic_insurance_paid,
        critical_illness_paid=s.critical_illness_paid, base=calc.base, deductible=calc.deductible,
        deductible_used_before=calc.deductible_used_before, deductible_left=calc.deductible_left,
        deductible_applied=calc.deductible_applied, ratio=calc.ratio, amount_before_caps=calc.amount_before_caps,
        per_settlement_cap=calc.per_settlement_cap, amount_after_settlement_cap=calc.amount_after_settlement_cap,
        cap=calc.cap, committed_before=calc.committed_before, cap_left=calc.cap_left, assistance=calc.assistance,
    )


def _gives_back(event: Event) -> bool:
    data = event.data
    return isinstance(data, ev.SettlementReversed) or (
        isinstance(data, ev.CaseDecided) and data.decision in ("rejected", "cancelled"))


def _runs(events: Sequence[Event]) -> list[list[Event]]:
    """The batch cut after every event that gives back to a ledger, so what came before it is applied first
    and what came after it sees the freed deductible and cap (a person's event order, DESIGN.md section 5)."""
    runs: list[list[Event]] = [[]]
    for event in events:
        runs[-1].append(event)
        if _gives_back(event):
            runs.append([])
    return [run for run in runs if run]


async def handle_events(session: AsyncSession, settings: ServiceSettings, events: Sequence[Event]) -> None:
    """Consumer handler for eligibility.decided, case.decided and transfer.settled, in the events' order."""
    for run in _runs(events):
        await _handle_run(session, settings, run)


async def _handle_run(session: AsyncSession, settings: ServiceSettings, events: list[Event]) -> None:
    """Events of which only the last may give back to a ledger: the rest is applied in bulk before it."""
    eligible = [e for e in events if isinstance(e.data, ev.EligibilityDecided) and e.data.eligible]
    if eligible:
        await _assess(session, settings, eligible)
    approved = [e.data.calculation_id for e in events
                if isinstance(e.data, ev.CaseDecided) and e.data.decision == "approved"]
    if approved:  # the common case, in one statement
        await session.execute(update(Calculation).where(Calculation.id.in_(approved),  # type: ignore[attr-defined]
                                                        Calculation.status == "calculated").values(status="approved"))
    settled = {e.data.calculation_id: e for e in events
               if isinstance(e.data, ev.TransferSettled) and e.data.status == "settled"}
    if settled:
        await _paid(session, settings, settled)
    for event in events:
        match event.data:
            case ev.SettlementReversed():
                await _reverse(session, settings, event)
            case ev.CaseDecided() if event.data.decision in ("rejected", "cancelled"):
                await _release(session, event.data.calculation_id, event.data.decision)


async def _assess(session: AsyncSession, settings: ServiceSettings, events: list[Event]) -> None:
    # A decision published again under a new event id gets past the inbox: one calculation per settlement,
    # whether the copy came in an earlier batch (known) or earlier in this one.
    first: dict[uuid.UUID, tuple[Event, ev.EligibilityDecided]] = {}
    for e in events:
        assert isinstance(e.data, ev.EligibilityDecided)
        first.setdefault(e.data.settlement.settlement_id, (e, e.data))
    known = set((await session.execute(select(Calculation.settlement_id).where(
        Calculation.settlement_id.in_(list(first))))).scalars())  # type: ignore[attr-defined]
    decided = [(e, d) for sid, (e, d) in first.items() if sid not in known]
    if not decided:
        return
    policies = await load_policies(session)
    pending = [_Pending(uuid.uuid4(), e.envelope.person_ref, d, e.span) for e, d in decided]
    await _calculate_and_record(session, settings, policies, pending)


@dataclass(frozen=True)
class _Pending:
    """An eligible settlement to calculate: the decision, its person, and the span its work belongs to."""

    calc_id: uuid.UUID
    person_ref: str
    decision: ev.EligibilityDecided
    span: Span


async def _calculate_and_record(session: AsyncSession, settings: ServiceSettings, policies: list[Policy],
                                pending: list[_Pending]) -> None:
    """The money rule for each settlement in order against its person's locked ledger; rows, ledgers and
    AssistanceCalculated events written in bulk. No policy for the region, date and category: `no_policy`."""
    ledgers = await Ledgers.lock(session, {(p.person_ref, p.decision.settlement.discharge_date.year)
                                           for p in pending})
    rows, outgoing = [], []
    for p in pending:
        data, ref, calc_id = p.decision, p.person_ref, p.calc_id
        s = data.settlement
        p.span.set_attribute("settlement.id", str(s.settlement_id))
        p.span.set_attribute("calculation.id", str(calc_id))
        policy = select_policy(policies, data.district_code or "", s.discharge_date)
        base_row = {"id": calc_id, "settlement_id": s.settlement_id, "person_ref": ref,
                    "year": s.discharge_date.year, "category": data.category,
                    "district_code": data.district_code, "subdistrict_code": data.subdistrict_code,
                    "settlement": s.model_dump(mode="json")}
        if policy is None or data.category is None or data.category not in policy.categories:
            # Recorded as no_policy (metric and log for ops), not dead-lettered: the batch keeps flowing, and
            # publishing a policy that covers it calculates it then (assess_waiting).
            log.error("no policy for region %s, category %s on %s", data.district_code,
                      data.category.value if data.category else None, s.discharge_date)
            CALCULATIONS.labels("no_policy").inc()
            rows.append({**base_row, "deductible_applied": ZERO, "assistance": ZERO, "status": "no_policy",
                         "figures": None})
            continue
        calc = calculate(_figures(s), data.category.value, policy, ledgers.get(ref, s.discharge_date.year))
        ledgers.put(ref, calc.ledger_after)
        figures = figures_of(s, calc)
        rows.append({**base_row, "policy_id": policy.policy_id, "policy_version": policy.version,
                     "deductible_applied": calc.deductible_applied, "assistance": calc.assistance,
                     "status": "calculated", "figures": figures.model_dump(mode="json")})
        p.span.set_attribute("assistance.amount", str(calc.assistance))
        CALCULATIONS.labels("assistance" if calc.assistance > 0 else "nothing_to_pay").inc()
        out = ev.AssistanceCalculated(
            calculation_id=calc_id, settlement_id=s.settlement_id, hospital_id=s.hospital_id,
            category=data.category, district_code=data.district_code or "",
            subdistrict_code=data.subdistrict_code or "", visit_type=s.visit_type, hospital_level=s.hospital_level,
            hospital_settlement_id=s.hospital_settlement_id, admission_date=s.admission_date,
            discharge_date=s.discharge_date, year=s.discharge_date.year, policy_id=policy.policy_id,
            policy_version=policy.version, total_amount=s.total_amount, figures=figures,
        )
        outgoing.append(Outgoing(ASSISTANCE_CALCULATED, Envelope.wrap(out, person_ref=ref, producer="calculation"),
                                 p.span))
    await session.execute(insert(Calculation), rows)
    await ledgers.save(session)
    await add_events(session, settings, outgoing)


async def assess_waiting(session: AsyncSession, settings: ServiceSettings, published: Policy) -> int:
    """Settlements recorded as `no_policy` that a just-published policy covers are calculated now, oldest
    discharge first, against the ledger as it stands (like any late settlement). Returns how many."""
    waiting = (await session.execute(
        select(Calculation).where(Calculation.status == "no_policy",
                                  Calculation.district_code == published.region_code)
        .order_by(Calculation.created_at).with_for_update())).scalars().all()
    covered = []
    for row in waiting:
        settlement = ev.SettlementReceived.model_validate(row.settlement)
        if row.category in published.categories and published.covers(published.region_code,
                                                                     settlement.discharge_date):
            covered.append((settlement, row))
    if not covered:
        return 0
    covered.sort(key=lambda c: c[0].discharge_date)
    pending = []
    for settlement, row in covered:
        span = tracer.start_span("settlement calculated after a policy was published")
        decision = ev.EligibilityDecided(settlement=settlement, eligible=True, reason="eligible",
                                         category=row.category, district_code=row.district_code,
                                         subdistrict_code=row.subdistrict_code)
        pending.append(_Pending(row.id, row.person_ref, decision, span))
    # The waiting rows make way for their calculations, under the same ids (never published before).
    await session.execute(delete(Calculation).where(Calculation.id.in_([p.calc_id for p in pending])))  # type: ignore[attr-defined]
    try:
        await _calculate_and_record(session, settings, await load_policies(session), pending)
    finally:
        for p in pending:
            p.span.end()
    return len(pending)


async def _locked_calculation(session: AsyncSession, **where: object) -> Calculation | None:
    query = select(Calculation).filter_by(**where).with_for_update()
    return (await session.execute(query)).scalar_one_or_none()


async def _give_back(session: AsyncSession, calc: Calculation) -> Decimal:
    """Return a calculation's deductible and assistance to the ledger, once."""
    if calc.released or calc.status == "no_policy":
        return ZERO
    ledgers = await Ledgers.lock(session, {(calc.person_ref, calc.year)})
    ledgers.put(calc.person_ref, release(ledgers.get(calc.person_ref, calc.year), calc.deductible_applied,
                                         calc.assistance))
    await ledgers.save(session)
    await session.execute(update(Calculation).where(Calculation.id == calc.id).values(released=True))
    return calc.assistance


async def _release(session: AsyncSession, calculation_id: uuid.UUID, status: str) -> None:
    calc = await _locked_calculation(session, id=calculation_id)
    if calc is None or calc.status in ("reversed", "paid"):
        return
    await _give_back(session, calc)
    await session.execute(update(Calculation).where(Calculation.id == calc.id).values(status=status))


async def _open_recovery(session: AsyncSession, calc: Calculation, amount: Decimal) -> ev.RecoveryOpened | None:
    """One recovery per calculation; the RecoveryOpened to publish when this call opened it (None if it was
    open already), so approval shows the case as paid and reversed, with its recovery."""
    now = datetime.now(UTC)
    stmt = insert(Recovery).values(id=uuid.uuid4(), calculation_id=calc.id, settlement_id=calc.settlement_id,
                                   person_ref=calc.person_ref, district_code=calc.district_code, amount=amount,
                                   created_at=now)
    inserted = (await session.execute(stmt.on_conflict_do_nothing().returning(Recovery.id))).scalar_one_or_none()
    if inserted is None:
        return None
    RECOVERIES.inc()
    return ev.RecoveryOpened(recovery_id=inserted, calculation_id=calc.id, settlement_id=calc.settlement_id,
                             district_code=calc.district_code, amount=amount, opened_at=now)


def _announce(calc: Calculation, events: list[ev.EventData], span: Span | None) -> list[Outgoing]:
    return [Outgoing(ASSISTANCE_CALCULATED, Envelope.wrap(e, person_ref=calc.person_ref, producer="calculation"),
                     span) for e in events]


async def _reverse(session: AsyncSession, settings: ServiceSettings, event: Event) -> None:
    """Before payment: free the ledger. After payment: open a recovery for the district."""
    reversal = event.data
    assert isinstance(reversal, ev.SettlementReversed)
    calc = await _locked_calculation(session, settlement_id=reversal.settlement_id)
    if calc is None or calc.status == "reversed":
        return
    event.span.set_attribute("settlement.id", str(calc.settlement_id))
    opened = None
    released = ZERO
    if calc.status == "paid":
        opened = await _open_recovery(session, calc, calc.assistance)
    else:
        released = await _give_back(session, calc)
    await session.execute(update(Calculation).where(Calculation.id == calc.id).values(status="reversed"))
    data = ev.AssistanceReversed(calculation_id=calc.id, settlement_id=calc.settlement_id,
                                 released_assistance=released, recovery_id=opened.recovery_id if opened else None)
    await add_events(session, settings, _announce(calc, [data, *([opened] if opened else [])], event.span))


async def _paid(session: AsyncSession, settings: ServiceSettings, settled: dict[uuid.UUID, Event]) -> None:
    await session.execute(update(Calculation).where(Calculation.id.in_(list(settled)),  # type: ignore[attr-defined]
                                                    Calculation.status != "reversed").values(status="paid"))
    reversed_meanwhile = (await session.execute(select(Calculation).where(
        Calculation.id.in_(list(settled)), Calculation.status == "reversed"))).scalars()  # type: ignore[attr-defined]
    for calc in reversed_meanwhile:
        # The money left after the hospital reversed the settlement (a race with the bank): recover it.
        event = settled[calc.id]
        assert isinstance(event.data, ev.TransferSettled)
        opened = await _open_recovery(session, calc, event.data.amount)
        if opened:
            await add_events(session, settings, _announce(calc, [opened], event.span))
