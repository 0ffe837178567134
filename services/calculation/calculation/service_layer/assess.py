"""Applying the money rule to eligible settlements, in each person's event order, and following each calculation
through approval, payment, rejection and reversal. The calculations change themselves (domain.calculation);
this layer loads them a batch at a time, calls them, saves them and hands their events to the unit of work."""

import logging
import uuid
from collections import Counter
from collections.abc import Sequence
from typing import Any

from opentelemetry.trace import Span

from calculation.adapters.metrics import CALCULATIONS, RECOVERIES
from calculation.domain.calculation import Calculation, CalculationStatus
from calculation.domain.policy import Policy
from calculation.service_layer.unit_of_work import CalculationUnitOfWork
from shared.contracts import events as ev
from shared.ids import new_id
from shared.messaging.consumer import Event
from shared.telemetry import tracer

log = logging.getLogger(__name__)


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


async def handle_events(uow: CalculationUnitOfWork, events: Sequence[Event]) -> None:
    """Consumer handler for eligibility.decided, case.decided and transfer.settled, in the events' order."""
    for run in _runs(events):
        await _handle_run(uow, run)


async def _handle_run(uow: CalculationUnitOfWork, events: list[Event]) -> None:
    """Events of which only the last may give back to a ledger: the rest is applied in bulk before it."""
    eligible = [e for e in events if isinstance(e.data, ev.EligibilityDecided) and e.data.eligible]
    if eligible:
        await _assess(uow, eligible)
    approved = [e.data.calculation_id for e in events
                if isinstance(e.data, ev.CaseDecided) and e.data.decision == "approved"]
    settled = {e.data.calculation_id: e for e in events
               if isinstance(e.data, ev.TransferSettled) and e.data.status == "settled"}
    if approved or settled:
        await _approve_and_settle(uow, approved, settled)
    last = events[-1]
    match last.data:
        case ev.SettlementReversed():
            await _reverse(uow, last, last.data)
        case ev.CaseDecided() if last.data.decision in ("rejected", "cancelled"):
            await _close(uow, last.data.calculation_id, CalculationStatus(last.data.decision))


async def _assess(uow: CalculationUnitOfWork, events: list[Event]) -> None:
    # A decision published again under a new event id gets past the inbox: one calculation per settlement,
    # whether the copy came in an earlier batch (known) or earlier in this one.
    first: dict[uuid.UUID, tuple[Event, ev.EligibilityDecided]] = {}
    for e in events:
        assert isinstance(e.data, ev.EligibilityDecided)
        first.setdefault(e.data.settlement.settlement_id, (e, e.data))
    known = await uow.calculations.known(list(first))
    decided = [(e, d) for sid, (e, d) in first.items() if sid not in known]
    if not decided:
        return
    calculations = [(Calculation.of(new_id(), e.envelope.person_ref, d, _received_json(e)), e.span)
                    for e, d in decided]
    await _calculate(uow, await uow.policies.all(), calculations)
    await uow.calculations.add([c for c, _ in calculations])


_RECEIVED_KEYS = ev.SettlementReceived.model_fields.keys()


def _received_json(event: Event) -> dict[str, Any] | None:
    """The decision's settlement in its JSON form as it came: from the envelope's `data` when the decision is the
    current version and its settlement has the model's keys (validated on the way in), else None."""
    settlement = event.envelope.data.get("settlement")
    if (event.envelope.schema_version == ev.EligibilityDecided.schema_version and isinstance(settlement, dict)
            and settlement.keys() == _RECEIVED_KEYS):
        return settlement
    return None


async def _calculate(uow: CalculationUnitOfWork, policies: list[Policy],
                     calculations: list[tuple[Calculation, Span]]) -> None:
    """The money rule for each calculation in order against its person's locked ledger, ledgers written in bulk.
    No policy for the region, date and category: it stays `no_policy` until one is published."""
    ledgers = await uow.ledgers.lock({(c.person_ref, c.year) for c, _ in calculations})
    counted: Counter[str] = Counter()  # the metric once a label per batch, not once a settlement
    for calc, span in calculations:
        span.set_attribute("settlement.id", str(calc.settlement_id))
        span.set_attribute("calculation.id", str(calc.calculation_id))
        if not calc.calculate(policies, ledgers):
            # Recorded as no_policy (metric and log for ops), not dead-lettered: the batch keeps flowing, and
            # publishing a policy that covers it calculates it then (assess_waiting).
            log.error("no policy for region %s, category %s on %s", calc.district_code,
                      calc.category.value if calc.category else None, _settlement(calc).discharge_date)
            counted["no_policy"] += 1
            continue
        span.set_attribute("assistance.amount", str(calc.assistance))
        counted["assistance" if calc.assistance > 0 else "nothing_to_pay"] += 1
        uow.collect(calc, span)
    for outcome, count in counted.items():
        CALCULATIONS.labels(outcome).inc(count)
    await uow.ledgers.save(ledgers)


async def assess_waiting(uow: CalculationUnitOfWork, published: Policy) -> int:
    """Settlements recorded as `no_policy` that a just-published policy covers are calculated now, oldest
    discharge first, against the ledger as it stands (like any late settlement). Returns how many."""
    covered = sorted((c for c in await uow.calculations.waiting(published.region_code)
                      if c.category in published.categories
                      and published.covers(published.region_code, _settlement(c).discharge_date)),
                     key=lambda c: _settlement(c).discharge_date)
    if not covered:
        return 0
    spans = [tracer.start_span("settlement calculated after a policy was published") for _ in covered]
    try:
        await _calculate(uow, await uow.policies.all(), list(zip(covered, spans, strict=True)))
    finally:
        for span in spans:
            span.end()
    # The waiting rows make way for their calculations, under the same ids (never published before).
    await uow.calculations.replace(covered)
    return len(covered)


async def _approve_and_settle(uow: CalculationUnitOfWork, approved: list[uuid.UUID],
                              settled: dict[uuid.UUID, Event]) -> None:
    """Approvals, then payments, of the calculations of one run (one load and one save for all of them)."""
    calculations = {c.calculation_id: c for c in await uow.calculations.locked({*approved, *settled})}
    for calculation_id in approved:
        if calc := calculations.get(calculation_id):
            calc.approve()
    for calculation_id, event in settled.items():
        if calc := calculations.get(calculation_id):
            assert isinstance(event.data, ev.TransferSettled)
            calc.settle(event.data.amount)
            _count_recoveries(calc)
            uow.collect(calc, event.span)
    await uow.calculations.save(list(calculations.values()))


async def _close(uow: CalculationUnitOfWork, calculation_id: uuid.UUID, decision: CalculationStatus) -> None:
    for calc in await uow.calculations.locked({calculation_id}):
        ledgers = await uow.ledgers.lock(calc.ledger_keys)
        calc.close(decision, ledgers)
        await uow.ledgers.save(ledgers)
        await uow.calculations.save([calc])


async def _reverse(uow: CalculationUnitOfWork, event: Event, reversal: ev.SettlementReversed) -> None:
    """Before payment: free the ledger. After payment: open a recovery for the district."""
    for calc in await uow.calculations.locked(settlement_id=reversal.settlement_id):
        if calc.status is CalculationStatus.REVERSED:
            return
        event.span.set_attribute("settlement.id", str(calc.settlement_id))
        ledgers = await uow.ledgers.lock(calc.ledger_keys)
        calc.reverse(ledgers)
        _count_recoveries(calc)
        await uow.ledgers.save(ledgers)
        await uow.calculations.save([calc])
        uow.collect(calc, event.span)


def _settlement(calc: Calculation) -> ev.SettlementReceived:
    if calc.assessment is None:
        raise ValueError("the calculation was loaded without its settlement")
    return calc.assessment.settlement


def _count_recoveries(calc: Calculation) -> None:
    if calc.recovery is not None:
        RECOVERIES.inc()
