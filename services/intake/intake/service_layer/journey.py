"""Intake follows every downstream topic to keep the hospital's status view current."""

from collections.abc import Sequence
from decimal import Decimal
from uuid import UUID

from intake.domain.journey import Journey
from intake.domain.settlement import News
from intake.service_layer.unit_of_work import IntakeUnitOfWork
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


async def follow_journey(uow: IntakeUnitOfWork, events: Sequence[Event]) -> None:
    """Apply downstream facts to the settlements' status, in event order within the batch: each settlement's
    facts folded into its news (`News.fold`), then one write of their state and one of their steps, with no
    read first (a settlement not ours is skipped)."""
    await uow.settlements.learn(News.fold(f for f in (_status_of(e.data) for e in events) if f is not None))
