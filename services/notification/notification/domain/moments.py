"""Which events are moments that matter to the person, and what their message says (DESIGN: calculated and
waiting for review, approved or rejected, paid, payment failed, recovery opened). Nothing else is told."""

from dataclasses import dataclass
from datetime import date
from typing import Any
from uuid import UUID

from notification.domain.messages import Notice
from notification.domain.schedule import LOCAL_TIME
from notification.domain.templates import Facts, Moment
from shared.contracts import events as ev
from shared.contracts.envelope import Envelope


@dataclass(frozen=True)
class Place:
    """Where and when the care was, as the resident view knows it (a screening heard earlier)."""

    hospital_id: str | None = None
    discharge_date: date | None = None


def settlement_of(data: ev.EventData) -> UUID | None:
    """The settlement an event is about (None for registry facts)."""
    match data:
        case ev.EligibilityDecided():
            return data.settlement.settlement_id
        case (ev.AssistanceCalculated() | ev.AssistanceReversed() | ev.RecoveryOpened() | ev.CaseDecided()
              | ev.TransferSettled() | ev.SettlementReversed()):
            return data.settlement_id
    return None


def moment_of(data: ev.EventData) -> Moment | None:
    """The moment an event is, if it is one the person is told about (from the event alone: a batch knows
    which of its events call for a message before it reads anything for them)."""
    match data:
        case ev.AssistanceCalculated() if data.figures.assistance > 0:
            return Moment.CALCULATED
        case ev.CaseDecided() if data.decision == "approved":
            return Moment.APPROVED
        case ev.CaseDecided() if data.decision == "rejected":
            return Moment.REJECTED
        case ev.TransferSettled() if data.status == "settled":
            return Moment.PAID
        case ev.TransferSettled() if data.status == "failed":
            return Moment.PAYMENT_FAILED
        case ev.RecoveryOpened():
            return Moment.RECOVERY
    return None


def notice_for(envelope: Envelope, data: ev.EventData, place: Place, account: str | None,
               hospitals: dict[str, str]) -> Notice | None:
    """The message an event calls for, if any (`moment_of`). `account` is the masked account a transfer's
    text names (`****1234`); `hospitals` names the hospitals (an unknown id shows as itself)."""
    moment = moment_of(data)
    if moment is None:
        return None
    hospital_id, discharge = place.hospital_id, place.discharge_date
    if isinstance(data, ev.AssistanceCalculated):  # it says where and when itself: no need to wait for the view
        hospital_id, discharge = data.hospital_id, data.discharge_date
    hospital = hospitals.get(hospital_id, hospital_id) if hospital_id else None

    def notice(**facts: Any) -> Notice:
        return Notice(envelope.event_id, envelope.person_ref, moment,
                      Facts(hospital=hospital, discharge_date=discharge, **facts), settlement_of(data))

    match data:
        case ev.AssistanceCalculated():
            return notice(amount=data.figures.assistance)
        case ev.CaseDecided() if moment is Moment.REJECTED:
            return notice(amount=data.amount, reason=data.reason_code)
        case ev.CaseDecided():
            return notice(amount=data.amount)
        case ev.TransferSettled() if moment is Moment.PAID:
            return notice(amount=data.amount, account=account,
                          paid_on=envelope.occurred_at.astimezone(LOCAL_TIME).date())
        case ev.TransferSettled():
            return notice(amount=data.amount, account=account, reason=data.reason)
        case ev.RecoveryOpened():
            return notice(amount=data.amount)
    return None
