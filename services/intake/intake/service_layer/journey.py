"""Intake follows every downstream topic to keep the hospital's status view current."""

from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal
from uuid import UUID

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from intake.adapters.tables import JourneyStep, Settlement
from intake.domain.journey import Journey, advance
from shared.contracts import events as ev
from shared.messaging.consumer import Event


def _status_of(data: ev.EventData) -> tuple[UUID, Journey, str | None, Decimal | None] | None:
    match data:
        case ev.EligibilityDecided():
            status = Journey.ELIGIBLE if data.eligible else Journey.PARKED
            return data.settlement.settlement_id, status, data.reason, None
        case ev.AssistanceCalculated():
            status = Journey.CALCULATED if data.figures.assistance > 0 else Journey.NOTHING_TO_PAY
            return data.settlement_id, status, None, data.figures.assistance
        case ev.CaseDecided():
            return data.settlement_id, Journey(data.decision), data.reason_code, None
        case ev.TransferSettled() if data.status == "settled":
            return data.settlement_id, Journey.PAID, None, None
        case ev.TransferSettled() if data.status == "failed":
            return data.settlement_id, Journey.PAYMENT_FAILED, data.reason, None
    return None


async def follow_journey(session: AsyncSession, events: Sequence[Event]) -> None:
    """Apply downstream facts to the settlements' status, in event order within the batch. The eligibility
    reason is kept apart from the status: later steps (calculated, approved, paid) do not erase it."""
    updates = [u for u in (_status_of(e.data) for e in events) if u is not None]
    if not updates:
        return
    ids = list({u[0] for u in updates})
    current = {
        row.id: (Journey(row.status), row.status_reason, row.assistance, row.eligibility_reason)
        for row in (await session.execute(
            select(Settlement.id, Settlement.status, Settlement.status_reason, Settlement.assistance,
                   Settlement.eligibility_reason)
            .where(Settlement.id.in_(ids)).with_for_update()  # type: ignore[attr-defined]
        )).all()
    }
    steps = []
    for settlement_id, status, reason, assistance in updates:
        if settlement_id not in current:
            continue
        old_status, old_reason, old_assistance, eligibility_reason = current[settlement_id]
        new_status = advance(old_status, status)
        current[settlement_id] = (
            new_status,
            reason if new_status == status else old_reason,
            assistance if assistance is not None else old_assistance,
            # Screening decisions arrive in order on one partition: the latest is the one that stands.
            reason if status in (Journey.ELIGIBLE, Journey.PARKED) else eligibility_reason,
        )
        steps.append({"settlement_id": settlement_id, "status": status.value, "reason": reason})
    now = datetime.now(UTC)
    await session.execute(
        update(Settlement),
        [{"id": sid, "status": status.value, "status_reason": reason, "assistance": assistance,
          "eligibility_reason": eligibility_reason, "updated_at": now}
         for sid, (status, reason, assistance, eligibility_reason) in current.items()],
    )
    if steps:
        await session.execute(insert(JourneyStep), steps)
