"""Accepting settlements and reversals from a hospital: all or nothing, idempotent, outbox in the same commit."""

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

from opentelemetry import trace
from opentelemetry.context import Context
from sqlalchemy import insert, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncSession

from intake.adapters.metrics import SETTLEMENTS_ACCEPTED, SETTLEMENTS_DUPLICATE, SETTLEMENTS_REVERSED
from intake.adapters.tables import JOURNEY_TABLE, SETTLEMENT_TABLE, JourneyStep, Settlement
from intake.domain.journey import Journey
from intake.domain.settlement import SettlementIn
from shared.contracts.envelope import Envelope
from shared.contracts.events import SettlementReceived, SettlementReversed
from shared.contracts.topics import SETTLEMENT_RECEIVED
from shared.db import LOCK_SETTLEMENT_ID, lock_keys
from shared.messaging.outbox import Outgoing, add_events
from shared.problems import ProblemError
from shared.security.crypto import FieldCipher, person_ref
from shared.settings import ServiceSettings
from shared.telemetry import tracer


@dataclass(frozen=True)
class Accepted:
    index: int
    settlement_id: uuid.UUID
    hospital_settlement_id: str
    outcome: str  # "created" or "duplicate"
    status: str


async def accept_settlements(
    session: AsyncSession,
    settings: ServiceSettings,
    cipher: FieldCipher,
    pepper: bytes,
    hospital_id: str,
    items: list[SettlementIn],
) -> list[Accepted]:
    """Store new settlements and emit SettlementReceived for each; replays of known ones are no-ops.

    The same hospital_settlement_id with a different body refuses the whole request (409): nothing is written.
    """
    seen_in_request: dict[str, tuple[int, str]] = {}
    conflicts: list[dict[str, object]] = []
    for index, item in enumerate(items):
        previous = seen_in_request.get(item.hospital_settlement_id)
        if previous and previous[1] != item.fingerprint():
            conflicts.append({"field": f"items.{index}.hospital_settlement_id", "code": "conflicting_duplicate",
                              "message": f"same id as item {previous[0]} with a different body"})
        seen_in_request.setdefault(item.hospital_settlement_id, (index, item.fingerprint()))

    keys = [(hospital_id, sid) for sid in seen_in_request]
    # Pushes of the same new ids at once wait for each other here, then find the first one's rows (below):
    # a duplicate (202) or a conflict (409), never a unique violation.
    await lock_keys(session, LOCK_SETTLEMENT_ID, (f"{h}/{sid}" for h, sid in keys))
    existing = {
        row.hospital_settlement_id: row
        for row in (
            await session.execute(
                select(Settlement.id, Settlement.hospital_settlement_id, Settlement.fingerprint, Settlement.status)
                .where(tuple_(Settlement.hospital_id, Settlement.hospital_settlement_id).in_(keys))
                .with_for_update()
            )
        ).all()
    }
    for index, item in enumerate(items):
        known = existing.get(item.hospital_settlement_id)
        if known is not None and known.fingerprint != item.fingerprint():
            conflicts.append({"field": f"items.{index}.hospital_settlement_id", "code": "conflicting_duplicate",
                              "message": "this settlement id was already accepted with a different body"})
    if conflicts:
        raise ProblemError(409, "conflicting_duplicate",
                           "a settlement id was already used with a different body; nothing was stored",
                           field=str(conflicts[0]["field"]), errors=conflicts)

    request = trace.get_current_span().get_span_context()
    request_link = [trace.Link(request)] if request.is_valid else None
    results: list[Accepted] = []
    rows: list[dict[str, object]] = []
    events: list[Outgoing] = []
    created: dict[str, uuid.UUID] = {}
    for index, item in enumerate(items):
        known = existing.get(item.hospital_settlement_id)
        if known is not None:
            results.append(Accepted(index, known.id, item.hospital_settlement_id, "duplicate", known.status))
            continue
        if item.hospital_settlement_id in created:
            results.append(Accepted(index, created[item.hospital_settlement_id], item.hospital_settlement_id,
                                    "duplicate", Journey.RECEIVED))
            continue
        settlement_id = uuid.uuid4()
        created[item.hospital_settlement_id] = settlement_id
        ref = person_ref(pepper, item.patient.national_id)
        aad = f"{hospital_id}/{item.hospital_settlement_id}"
        rows.append({
            "id": settlement_id,
            "hospital_id": hospital_id,
            "hospital_settlement_id": item.hospital_settlement_id,
            "fingerprint": item.fingerprint(),
            "person_ref": ref,
            "national_id_enc": cipher.encrypt(item.patient.national_id, aad),
            "name_enc": cipher.encrypt(item.patient.name, aad),
            "hospital_level": item.hospital_level,
            "visit_type": item.visit_type.value,
            "admission_date": item.admission_date,
            "discharge_date": item.discharge_date,
            "total_amount": Decimal(item.total_amount),
            "policy_scope_amount": Decimal(item.policy_scope_amount),
            "basic_insurance_paid": Decimal(item.basic_insurance_paid),
            "critical_illness_paid": Decimal(item.critical_illness_paid),
            "status": Journey.RECEIVED.value,
        })
        data = SettlementReceived(
            settlement_id=settlement_id,
            hospital_id=hospital_id,
            hospital_settlement_id=item.hospital_settlement_id,
            hospital_level=item.hospital_level,
            visit_type=item.visit_type,
            admission_date=item.admission_date,
            discharge_date=item.discharge_date,
            total_amount=Decimal(item.total_amount),
            policy_scope_amount=Decimal(item.policy_scope_amount),
            basic_insurance_paid=Decimal(item.basic_insurance_paid),
            critical_illness_paid=Decimal(item.critical_illness_paid),
        )
        # One trace per settlement, from here to the bank: a new root, linked to the hospital's request.
        span = tracer.start_span("settlement accepted", context=Context(), links=request_link,
                                 attributes={"settlement.id": str(settlement_id), "person_ref": ref,
                                             "hospital.id": hospital_id})
        events.append(Outgoing(SETTLEMENT_RECEIVED, Envelope.wrap(data, person_ref=ref, producer="intake"), span))
        span.end()
        results.append(Accepted(index, settlement_id, item.hospital_settlement_id, "created", Journey.RECEIVED))
    if rows:
        await session.execute(insert(SETTLEMENT_TABLE), rows)  # Core executemany: the hot path of intake
        await session.execute(insert(JOURNEY_TABLE), [{"settlement_id": r["id"], "status": Journey.RECEIVED.value}
                                                      for r in rows])
        await add_events(session, settings, events)
    SETTLEMENTS_ACCEPTED.labels(hospital_id).inc(len(rows))
    SETTLEMENTS_DUPLICATE.labels(hospital_id).inc(len(results) - len(rows))
    return results


async def reverse_settlement(
    session: AsyncSession, settings: ServiceSettings, hospital_id: str, hospital_settlement_id: str, reason: str | None
) -> Settlement:
    """Void a settlement at the hospital's request; the reversal flows through every service. Idempotent."""
    settlement = (
        await session.execute(
            select(Settlement)
            .where(Settlement.hospital_id == hospital_id, Settlement.hospital_settlement_id == hospital_settlement_id)
            .with_for_update()
        )
    ).scalar_one_or_none()
    if settlement is None:
        raise ProblemError(404, "settlement_not_found", "no such settlement for this hospital",
                           field="hospital_settlement_id")
    if settlement.status == Journey.REVERSED:
        return settlement
    now = datetime.now(UTC)
    await session.execute(
        update(Settlement).where(Settlement.id == settlement.id)
        .values(status=Journey.REVERSED.value, status_reason=reason or "reversed_by_hospital", updated_at=now)
    )
    await session.execute(insert(JourneyStep).values(settlement_id=settlement.id, status=Journey.REVERSED.value,
                                                     reason=reason))
    data = SettlementReversed(settlement_id=settlement.id, hospital_id=hospital_id,
                              hospital_settlement_id=hospital_settlement_id, reversed_at=now, reason=reason)
    with tracer.start_as_current_span("settlement reversed") as span:
        span.set_attribute("settlement.id", str(settlement.id))
        await add_events(session, settings, [Outgoing(
            SETTLEMENT_RECEIVED, Envelope.wrap(data, person_ref=settlement.person_ref, producer="intake"), span)])
    settlement.status = Journey.REVERSED.value
    SETTLEMENTS_REVERSED.labels(hospital_id).inc()
    return settlement
