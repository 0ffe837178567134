"""Accepting settlements and reversals from a hospital: all or nothing, idempotent, events in the same commit."""

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from opentelemetry import trace

from intake.adapters.metrics import SETTLEMENTS_ACCEPTED, SETTLEMENTS_DUPLICATE, SETTLEMENTS_REVERSED
from intake.dependencies import IntakeDeps
from intake.domain.journey import Journey
from intake.domain.settlement import Announced, Settlement, refuse_conflicts
from intake.domain.submission import SettlementIn, fingerprint
from intake.service_layer.unit_of_work import IntakeUnitOfWork
from shared.contracts.envelope import Envelope
from shared.contracts.events import EventData
from shared.contracts.topics import SETTLEMENT_RECEIVED
from shared.errors import NotFound
from shared.messaging.outbox import Outgoing
from shared.telemetry import entry_spans, tracer


@dataclass(frozen=True)
class Accepted:
    index: int
    settlement_id: uuid.UUID
    hospital_settlement_id: str
    outcome: str  # "created" or "duplicate"
    status: str


def settlement_not_found() -> NotFound:
    # The same answer whether the id is unknown or another hospital's: nothing leaks.
    return NotFound("settlement_not_found", "no such settlement for this hospital", field="hospital_settlement_id")


async def accept_settlements(uow: IntakeUnitOfWork, deps: IntakeDeps, hospital_id: str,
                             items: list[SettlementIn]) -> list[Accepted]:
    """Store new settlements and emit SettlementReceived for each; replays of known ones are no-ops.

    The same hospital_settlement_id with a different body refuses the whole request (Conflict): nothing is written.
    """
    bodies = [item.canonical() for item in items]
    fingerprints = [fingerprint(body) for body in bodies]
    known = await uow.settlements.lock_known(hospital_id, (item.hospital_settlement_id for item in items))
    refuse_conflicts(items, fingerprints, known)
    results: list[Accepted] = []
    created: dict[str, Settlement] = {}
    for index, (item, body, hashed) in enumerate(zip(items, bodies, fingerprints, strict=True)):
        sid = item.hospital_settlement_id
        if sid in known:
            results.append(Accepted(index, known[sid].id, sid, "duplicate", known[sid].status))
        elif sid in created:
            results.append(Accepted(index, created[sid].id, sid, "duplicate", Journey.RECEIVED))
        else:
            settlement = Settlement.receive(uuid.uuid4(), hospital_id, item, body, hashed,
                                            deps.person_ref(item.patient.national_id),
                                            deps.seal(item.patient.national_id, item.patient.name,
                                                      f"{hospital_id}/{sid}"))
            created[sid] = settlement
            results.append(Accepted(index, settlement.id, sid, "created", Journey.RECEIVED))
    await uow.settlements.add(list(created.values()))
    _emit_received(uow, created.values())
    SETTLEMENTS_ACCEPTED.labels(hospital_id).inc(len(created))
    SETTLEMENTS_DUPLICATE.labels(hospital_id).inc(len(results) - len(created))
    return results


def _emit_received(uow: IntakeUnitOfWork, settlements: Iterable[Settlement]) -> None:
    request = trace.get_current_span().get_span_context()
    request_link = [trace.Link(request)] if request.is_valid else ()
    for settlement in settlements:
        # One trace per settlement, from here to the bank: a new root, linked to the hospital's request (an
        # unsampled one costs its sampling decision, shared.telemetry.EntrySpans).
        span = entry_spans.start("settlement accepted", links=request_link,
                                 attributes={"settlement.id": str(settlement.id), "person_ref": settlement.person_ref,
                                             "hospital.id": settlement.hospital_id})
        uow.emit(*_outgoing(settlement, span))
        span.end()


def _outgoing(settlement: Settlement, cause: trace.Span) -> list[Outgoing]:
    events = [Outgoing(SETTLEMENT_RECEIVED, _envelope(event, settlement.person_ref), cause)
              for event in settlement.events]
    settlement.events = []
    return events


def _envelope(event: EventData | Announced, person_ref: str) -> Envelope:
    if isinstance(event, Announced):
        return Envelope.wrap_json(event.event_type, event.data, person_ref=person_ref, producer="intake")
    return Envelope.wrap(event, person_ref=person_ref, producer="intake")


async def reverse_settlement(uow: IntakeUnitOfWork, hospital_id: str, hospital_settlement_id: str,
                             reason: str | None) -> Settlement:
    """Void a settlement at the hospital's request; the reversal flows through every service. Idempotent.

    A reversal travels on `settlement.received` (ADR 0008): it must stay in order behind its settlement."""
    settlement = await uow.settlements.get(hospital_id, hospital_settlement_id)
    if settlement is None:
        raise settlement_not_found()
    settlement.reverse(reason, datetime.now(UTC))
    if not settlement.events:
        return settlement
    await uow.settlements.save([settlement])
    with tracer.start_as_current_span("settlement reversed") as span:
        span.set_attribute("settlement.id", str(settlement.id))
        uow.emit(*_outgoing(settlement, span))
    SETTLEMENTS_REVERSED.labels(hospital_id).inc()
    return settlement
