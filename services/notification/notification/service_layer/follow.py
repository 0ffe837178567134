"""The consumer handler: contacts, the resident's view, and the messages the events call for, in one transaction.

Per batch: one upsert per kind of fact; only when some event calls for a message, one read of the contacts, the
settlements and the accounts its messages need, and one insert of the messages. A message's id is derived from
its event and person, so a redelivered event writes nothing.
"""

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from notification.adapters.metrics import MESSAGES_WRITTEN
from notification.adapters.repositories import RecipientRow, ViewFacts
from notification.dependencies import Wording
from notification.domain.messages import NewMessage, initial_status, one_per_event
from notification.domain.moments import Place, moment_of, notice_for, settlement_of
from notification.domain.schedule import LOCAL_TIME
from notification.domain.templates import PLACEHOLDERS, Moment
from notification.service_layer.unit_of_work import NotificationUnitOfWork
from shared.contracts import events as ev
from shared.messaging.consumer import Event
from shared.telemetry import traceparent_of

PLACE_FIELDS = frozenset({"hospital", "discharge_date"})


async def follow_events(uow: NotificationUnitOfWork, wording: Wording, events: Sequence[Event]) -> None:
    """Consumer handler for the settlement topics, registry.contact and registry.payee."""
    now = datetime.now(UTC)
    if changed := await _store_contacts(uow, events, now):
        await uow.messages.follow_contacts(changed)  # an opt-out suppresses, a first phone releases
    await uow.view.apply(_view_facts(events, now))
    # Which events call for a message is known from the events alone (`moment_of`): the reads below are only for
    # those (a batch of screening decisions, most of all, calls for none and reads nothing), and the view's place
    # only for a text that names the hospital or the date and an event that does not carry them itself.
    hospitals = wording.hospital_names
    moments = {id(e): m for e in events if (m := moment_of(e.data)) is not None}
    if not moments:
        return
    telling = [e for e in events if id(e) in moments]
    contacts = await uow.recipients.get_many({e.envelope.person_ref for e in telling})
    accounts = await uow.recipients.accounts({(e.envelope.person_ref, e.data.account_version) for e in telling
                                              if isinstance(e.data, ev.TransferSettled)
                                              and e.data.account_version is not None})
    places = await uow.view.places({sid for e in telling if _names_the_place(e.data, moments[id(e)])
                                    and (sid := settlement_of(e.data)) is not None})
    notices, causes = [], {}
    # One batch mixes topics (partitions are not ordered among each other): write the person's messages in
    # the order things happened, so a payment's message never goes before its approval's.
    for event in sorted(telling, key=lambda e: e.envelope.occurred_at):
        sid = settlement_of(event.data)
        account = _account(event, contacts, accounts) if isinstance(event.data, ev.TransferSettled) else None
        notice = notice_for(event.envelope, event.data, places.get(sid, Place()) if sid else Place(), account,
                            hospitals)  # only a transfer's text names an account
        if notice is not None:
            notices.append(notice)
            causes[notice.message_id] = event
    notices = one_per_event(notices)
    if not notices:
        return
    not_before = wording.quiet.next_allowed(now + timedelta(seconds=wording.hold_s))
    messages = []
    for n in notices:
        cause = causes[n.message_id]
        messages.append(NewMessage(
            n.message_id, n.event_id, n.person_ref, n.settlement_id, n.moment, wording.templates.version,
            wording.templates.render(n.moment, n.facts), initial_status(contacts.get(n.person_ref)),
            cause.envelope.occurred_at, not_before, traceparent_of(cause.span)))
    for moment in await uow.messages.add(messages, now):
        MESSAGES_WRITTEN.labels(moment).inc()


def _names_the_place(data: ev.EventData, moment: Moment) -> bool:
    """Whether this event's text may name where or when the care was (its moment's placeholders) and takes it
    from the view (a calculation carries both itself)."""
    return not isinstance(data, ev.AssistanceCalculated) and bool(PLACEHOLDERS[moment] & PLACE_FIELDS)


def _account(event: Event, contacts: dict[str, RecipientRow], accounts: dict[tuple[str, int], str]) -> str | None:
    """The account a transfer's message names: the version that transfer went to; only when that version is
    not known here (an event without it) the latest account the registry sent."""
    ref = event.envelope.person_ref
    version = event.data.account_version if isinstance(event.data, ev.TransferSettled) else None
    masked = accounts.get((ref, version)) if version is not None else None
    masked = masked or (contacts[ref].account_masked if ref in contacts else None)
    return f"****{masked[-4:]}" if masked else None


async def _store_contacts(uow: NotificationUnitOfWork, events: Sequence[Event], now: datetime) -> list[str]:
    """Store the batch's contacts and accounts; the persons whose contact came."""
    latest: dict[str, ev.ContactUpdated] = {}
    accounts: dict[str, str] = {}
    versions: dict[tuple[str, int], str] = {}
    for e in events:
        if not isinstance(e.data, ev.RegistryChunk | ev.ContactUpdated | ev.PayeeAccountUpdated):
            continue
        for ref, data in ev.per_person(e.envelope.person_ref, e.data):  # one person or many (ADR 0033)
            if isinstance(data, ev.ContactUpdated) and (
                    ref not in latest or data.contact_version > latest[ref].contact_version):
                latest[ref] = data
            elif isinstance(data, ev.PayeeAccountUpdated):
                accounts[ref] = data.account_masked  # only the masked form is kept: the texts need no more
                versions[(ref, data.account_version)] = data.account_masked
    await uow.recipients.store(latest, versions, accounts, now)
    return list(latest)


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
