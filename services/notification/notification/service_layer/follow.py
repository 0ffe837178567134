"""The consumer handler: contacts, the resident's view, and the messages the events call for, in one transaction.

Per batch: one upsert per kind of fact, one read of the settlements and contacts the messages need, one insert
of the messages. A message's id is derived from its event and person, so a redelivered event writes nothing.
"""

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from notification.adapters.metrics import MESSAGES_WRITTEN
from notification.adapters.repositories import Contact, ViewFacts
from notification.adapters.tables import Recipient, ResidentSettlement
from notification.dependencies import Wording
from notification.domain.messages import Notice, one_per_event
from notification.domain.schedule import LOCAL_TIME
from notification.domain.templates import Facts, Moment
from notification.service_layer.unit_of_work import NotificationUnitOfWork
from shared.contracts import events as ev
from shared.messaging.consumer import Event
from shared.telemetry import traceparent_of


async def follow_events(uow: NotificationUnitOfWork, wording: Wording, events: Sequence[Event]) -> None:
    """Consumer handler for the settlement topics, registry.contact and registry.payee."""
    now = datetime.now(UTC)
    await _store_contacts(uow, events, now)
    await uow.view.apply(_view_facts(events, now))
    contacts = await uow.recipients.get_many({e.envelope.person_ref for e in events})
    accounts = await uow.recipients.accounts({(e.envelope.person_ref, e.data.account_version) for e in events
                                              if isinstance(e.data, ev.TransferSettled)
                                              and e.data.account_version is not None})
    view = await uow.view.get_many({sid for e in events if (sid := _settlement_of(e.data)) is not None})
    notices, causes = [], {}
    # One batch mixes topics (partitions are not ordered among each other): write the person's messages in
    # the order things happened, so a payment's message never goes before its approval's.
    for event in sorted(events, key=lambda e: e.envelope.occurred_at):
        notice = _notice(event, view, contacts, accounts, wording.hospital_names)
        if notice is not None:
            notices.append(notice)
            causes[notice.message_id] = event
    notices = one_per_event(notices)
    if not notices:
        return
    not_before = wording.quiet.next_allowed(now + timedelta(seconds=wording.hold_s))
    rows = []
    for n in notices:
        contact = contacts.get(n.person_ref)
        rows.append({
            "id": n.message_id, "event_id": n.event_id, "person_ref": n.person_ref, "settlement_id": n.settlement_id,
            "moment": n.moment.value, "template_version": wording.templates.version,
            "body": wording.templates.render(n.moment, n.facts),
            # An opt-out is honoured from the moment it is known: the message is recorded, never sent.
            "status": "suppressed" if contact is not None and contact.sms_opt_out else "pending",
            "attempts": 0, "occurred_at": causes[n.message_id].envelope.occurred_at, "not_before": not_before,
            "traceparent": traceparent_of(causes[n.message_id].span),
            "created_at": now, "updated_at": now,
        })
    for moment in await uow.messages.add(rows):
        MESSAGES_WRITTEN.labels(moment).inc()


def _settlement_of(data: ev.EventData) -> UUID | None:
    match data:
        case ev.EligibilityDecided():
            return data.settlement.settlement_id
        case (ev.AssistanceCalculated() | ev.AssistanceReversed() | ev.RecoveryOpened() | ev.CaseDecided()
              | ev.TransferSettled() | ev.SettlementReversed()):
            return data.settlement_id
    return None


def _short_account(masked: str | None) -> str | None:
    return f"****{masked[-4:]}" if masked else None


def _notice(event: Event, view: dict[UUID, ResidentSettlement], contacts: dict[str, Recipient],
            accounts: dict[tuple[str, int], str], hospitals: dict[str, str]) -> Notice | None:
    """The message an event calls for, if any (DESIGN: the moments that matter to the person).

    A transfer's message names the account version that transfer went to; only when that version is not
    known here (an event without it) does it fall back to the latest account the registry sent.
    """
    data, ref = event.data, event.envelope.person_ref
    sid = _settlement_of(data)
    row = view.get(sid) if sid else None
    hospital_id = row.hospital_id if row else None
    discharge = row.discharge_date if row else None
    if isinstance(data, ev.AssistanceCalculated):  # it says where and when itself: no need to wait for the view
        hospital_id, discharge = data.hospital_id, data.discharge_date
    hospital = hospitals.get(hospital_id, hospital_id) if hospital_id else None
    version = data.account_version if isinstance(data, ev.TransferSettled) else None
    masked = accounts.get((ref, version)) if version is not None else None
    account = _short_account(masked or (contacts[ref].account_masked if ref in contacts else None))

    def notice(moment: Moment, **facts: Any) -> Notice:
        return Notice(event.envelope.event_id, ref, moment,
                      Facts(hospital=hospital, discharge_date=discharge, **facts), sid)

    match data:
        case ev.AssistanceCalculated() if data.figures.assistance > 0:
            return notice(Moment.CALCULATED, amount=data.figures.assistance)
        case ev.CaseDecided() if data.decision == "approved":
            return notice(Moment.APPROVED, amount=data.amount)
        case ev.CaseDecided() if data.decision == "rejected":
            return notice(Moment.REJECTED, amount=data.amount, reason=data.reason_code)
        case ev.TransferSettled() if data.status == "settled":
            return notice(Moment.PAID, amount=data.amount, account=account,
                          paid_on=event.envelope.occurred_at.astimezone(LOCAL_TIME).date())
        case ev.TransferSettled() if data.status == "failed":
            return notice(Moment.PAYMENT_FAILED, amount=data.amount, account=account, reason=data.reason)
        case ev.RecoveryOpened():
            return notice(Moment.RECOVERY, amount=data.amount)
    return None


async def _store_contacts(uow: NotificationUnitOfWork, events: Sequence[Event], now: datetime) -> None:
    latest: dict[str, ev.ContactUpdated] = {}
    accounts: dict[str, str] = {}
    versions: dict[tuple[str, int], str] = {}
    for e in events:
        ref = e.envelope.person_ref
        if isinstance(e.data, ev.ContactUpdated) and (
                ref not in latest or e.data.contact_version > latest[ref].contact_version):
            latest[ref] = e.data
        elif isinstance(e.data, ev.PayeeAccountUpdated):
            accounts[ref] = e.data.account_masked  # only the masked form is kept: the texts need no more
            versions[(ref, e.data.account_version)] = e.data.account_masked
    contacts = [Contact(ref, d.contact_version, d.phone_ciphertext, d.phone_masked, d.sms_opt_out)
                for ref, d in latest.items()]
    await uow.recipients.store(contacts, versions, accounts, now)


def _view_facts(events: Sequence[Event], now: datetime) -> ViewFacts:
    facts = ViewFacts()
    for e in events:
        data, base = e.data, {"person_ref": e.envelope.person_ref, "updated_at": now}
        match data:
            case ev.EligibilityDecided():
                s = data.settlement
                facts.decided[s.settlement_id] = {
                    **base, "settlement_id": s.settlement_id, "hospital_id": s.hospital_id,
                    "visit_type": s.visit_type.value, "discharge_date": s.discharge_date,
                    "district_code": data.district_code, "subdistrict_code": data.subdistrict_code,
                    "eligible": data.eligible, "eligibility_reason": data.reason}
            case ev.AssistanceCalculated():
                facts.calculated[data.settlement_id] = {
                    **base, "settlement_id": data.settlement_id, "assistance": data.figures.assistance,
                    "district_code": data.district_code, "subdistrict_code": data.subdistrict_code,
                    "review_state": "awaiting_review" if data.figures.assistance > 0 else "nothing_to_pay"}
            case ev.CaseDecided():
                facts.reviewed[data.settlement_id] = {**base, "settlement_id": data.settlement_id,
                                                      "review_state": data.decision, "review_reason": data.reason_code}
            case ev.TransferSettled() if data.status in ("settled", "failed"):
                old = facts.paid.get(data.settlement_id)
                if old is None or data.attempt >= old["payment_attempt"]:
                    facts.paid[data.settlement_id] = {
                        **base, "settlement_id": data.settlement_id, "payment_status": data.status,
                        "payment_reason": data.reason, "payment_attempt": data.attempt,
                        "paid_amount": data.amount if data.status == "settled" else None,
                        "paid_on": e.envelope.occurred_at.astimezone(LOCAL_TIME).date()}
            case ev.SettlementReversed() | ev.AssistanceReversed() | ev.RecoveryOpened():
                earlier = facts.reversed.get(data.settlement_id, {}).get("recovery", False)
                facts.reversed[data.settlement_id] = {
                    **base, "settlement_id": data.settlement_id, "reversed": True,
                    "recovery": earlier or isinstance(data, ev.RecoveryOpened)}
    return facts
