"""The consumer handler: contacts, the resident's view, and the messages the events call for, in one transaction.

Per batch: one upsert per kind of fact, one read of the settlements and contacts the messages need, one insert
of the messages. A message's id is derived from its event and person, so a redelivered event writes nothing.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from sqlalchemy import case, literal_column, select, tuple_
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from notification.adapters.metrics import MESSAGES_WRITTEN
from notification.adapters.tables import MESSAGES, VIEW, PayeeAccount, Recipient, ResidentSettlement
from notification.domain.messages import Notice, one_per_event
from notification.domain.schedule import LOCAL_TIME, QuietHours
from notification.domain.templates import Facts, Moment, TemplateSet
from shared.contracts import events as ev
from shared.db import signal_after_commit
from shared.messaging.consumer import Event
from shared.telemetry import traceparent_of

MESSAGES_DUE = "messages.due"
FINAL_REVIEW = ("approved", "rejected", "cancelled")


@dataclass(frozen=True)
class Wording:
    """What the handler writes with: the template version in use, quiet hours, hospital names, and how long a
    new message waits for an earlier event that may still be on another topic."""

    templates: TemplateSet
    quiet: QuietHours
    hospital_names: dict[str, str]
    hold_s: float = 2.0


async def follow_events(session: AsyncSession, wording: Wording, events: Sequence[Event]) -> None:
    """Consumer handler for the settlement topics, registry.contact and registry.payee."""
    now = datetime.now(UTC)
    await _store_contacts(session, events, now)
    await _update_view(session, events, now)
    refs = {e.envelope.person_ref for e in events}
    contacts = {c.person_ref: c for c in (await session.execute(
        select(Recipient).where(Recipient.person_ref.in_(refs)))).scalars()}  # type: ignore[attr-defined]
    versions = {(e.envelope.person_ref, e.data.account_version) for e in events
                if isinstance(e.data, ev.TransferSettled) and e.data.account_version is not None}
    accounts = {(a.person_ref, a.account_version): a.account_masked for a in (await session.execute(
        select(PayeeAccount).where(tuple_(PayeeAccount.person_ref, PayeeAccount.account_version).in_(versions))
    )).scalars()} if versions else {}
    settlement_ids = {sid for e in events if (sid := _settlement_of(e.data)) is not None}
    view = {r.settlement_id: r for r in (await session.execute(select(ResidentSettlement).where(
        ResidentSettlement.settlement_id.in_(settlement_ids))))  # type: ignore[attr-defined]
        .scalars()} if settlement_ids else {}
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
    written = (await session.execute(insert(MESSAGES).on_conflict_do_nothing(index_elements=["id"])
                                     .returning(MESSAGES.c.moment), rows)).scalars().all()
    for moment in written:
        MESSAGES_WRITTEN.labels(moment).inc()
    if written:
        signal_after_commit(session, MESSAGES_DUE)


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


async def _store_contacts(session: AsyncSession, events: Sequence[Event], now: datetime) -> None:
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
    table = Recipient.__table__  # type: ignore[attr-defined]
    if latest:
        stmt = insert(table).values([{"person_ref": ref, "contact_version": d.contact_version,
                                      "phone_ciphertext": d.phone_ciphertext, "phone_masked": d.phone_masked,
                                      "sms_opt_out": d.sms_opt_out, "updated_at": now} for ref, d in latest.items()])
        # An older version arriving late never overwrites a newer contact.
        await session.execute(stmt.on_conflict_do_update(
            index_elements=["person_ref"],
            set_={c: stmt.excluded[c] for c in ("contact_version", "phone_ciphertext", "phone_masked", "sms_opt_out",
                                                "updated_at")},
            where=table.c.contact_version < stmt.excluded.contact_version))
    if versions:
        await session.execute(insert(PayeeAccount.__table__).on_conflict_do_nothing(  # type: ignore[attr-defined]
            index_elements=["person_ref", "account_version"]), [
            {"person_ref": ref, "account_version": v, "account_masked": m} for (ref, v), m in versions.items()])
    if accounts:
        stmt = insert(table).values([{"person_ref": ref, "contact_version": 0, "account_masked": masked,
                                      "updated_at": now} for ref, masked in accounts.items()])
        await session.execute(stmt.on_conflict_do_update(
            index_elements=["person_ref"], set_={"account_masked": stmt.excluded.account_masked}))


async def _upsert(session: AsyncSession, rows: dict[UUID, dict[str, Any]], set_: dict[str, Any] | None = None
                  ) -> None:
    """Insert or update view rows: each kind of fact writes only its own columns (topics arrive in any order)."""
    if not rows:
        return
    values = list(rows.values())
    stmt = insert(VIEW)
    columns = [c for c in values[0] if c not in ("settlement_id", "person_ref")]
    updates = {c: stmt.excluded[c] for c in columns}
    updates.update(set_ or {})
    await session.execute(stmt.on_conflict_do_update(index_elements=["settlement_id"], set_=updates), values)


async def _update_view(session: AsyncSession, events: Sequence[Event], now: datetime) -> None:
    decided: dict[UUID, dict[str, Any]] = {}
    calculated: dict[UUID, dict[str, Any]] = {}
    reviewed: dict[UUID, dict[str, Any]] = {}
    paid: dict[UUID, dict[str, Any]] = {}
    reversed_: dict[UUID, dict[str, Any]] = {}
    for e in events:
        data, base = e.data, {"person_ref": e.envelope.person_ref, "updated_at": now}
        match data:
            case ev.EligibilityDecided():
                s = data.settlement
                decided[s.settlement_id] = {**base, "settlement_id": s.settlement_id, "hospital_id": s.hospital_id,
                                            "visit_type": s.visit_type.value, "discharge_date": s.discharge_date,
                                            "subdistrict_code": data.subdistrict_code, "eligible": data.eligible,
                                            "eligibility_reason": data.reason}
            case ev.AssistanceCalculated():
                calculated[data.settlement_id] = {
                    **base, "settlement_id": data.settlement_id, "assistance": data.figures.assistance,
                    "subdistrict_code": data.subdistrict_code,
                    "review_state": "awaiting_review" if data.figures.assistance > 0 else "nothing_to_pay"}
            case ev.CaseDecided():
                reviewed[data.settlement_id] = {**base, "settlement_id": data.settlement_id,
                                                "review_state": data.decision, "review_reason": data.reason_code}
            case ev.TransferSettled() if data.status in ("settled", "failed"):
                old = paid.get(data.settlement_id)
                if old is None or data.attempt >= old["payment_attempt"]:
                    paid[data.settlement_id] = {
                        **base, "settlement_id": data.settlement_id, "payment_status": data.status,
                        "payment_reason": data.reason, "payment_attempt": data.attempt,
                        "paid_amount": data.amount if data.status == "settled" else None,
                        "paid_on": e.envelope.occurred_at.astimezone(LOCAL_TIME).date()}
            case ev.SettlementReversed() | ev.AssistanceReversed() | ev.RecoveryOpened():
                earlier = reversed_.get(data.settlement_id, {}).get("recovery", False)
                reversed_[data.settlement_id] = {
                    **base, "settlement_id": data.settlement_id, "reversed": True,
                    "recovery": earlier or isinstance(data, ev.RecoveryOpened)}
    await _upsert(session, decided)
    # A final decision is never taken back by a calculation that arrives after it (another topic). The states
    # are inlined: an expanding IN parameter cannot go with the many-rows form of the statement.
    final = VIEW.c.review_state.in_([literal_column(f"'{state}'") for state in FINAL_REVIEW])
    await _upsert(session, calculated, {"review_state": case(
        (final, VIEW.c.review_state), else_=insert(VIEW).excluded.review_state)})
    await _upsert(session, reviewed)
    # The latest attempt's word wins: a re-issued payment's success after a failure, not the other way round.
    stmt = insert(VIEW)
    await _upsert(session, paid, {c: case((VIEW.c.payment_attempt > stmt.excluded.payment_attempt, VIEW.c[c]),
                                          else_=stmt.excluded[c])
                                  for c in ("payment_status", "payment_reason", "payment_attempt", "paid_amount",
                                            "paid_on")})
    await _upsert(session, reversed_, {"recovery": VIEW.c.recovery | stmt.excluded.recovery})
