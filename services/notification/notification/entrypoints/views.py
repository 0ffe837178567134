"""Reads: the resident's status view, and the messages for operations, straight from the tables (never through
the domain)."""

from typing import Any

from pydantic import BaseModel
from sqlalchemy import extract, func, select
from sqlmodel import col

from notification.adapters.tables import Message, Recipient, ResidentSettlement
from notification.domain.templates import TemplateSet
from shared.db import Database
from shared.security.area import Area


class Decision(BaseModel):
    eligible: bool | None
    reason: str | None
    text: str | None


class Review(BaseModel):
    state: str
    text: str
    reason: str | None = None
    reason_text: str | None = None


class PaymentView(BaseModel):
    status: str
    text: str
    amount: str | None = None
    paid_on: str | None = None
    account: str | None = None
    reason: str | None = None
    what_to_do: str | None = None


class SettlementView(BaseModel):
    settlement_id: str
    hospital: str | None
    visit_type: str | None
    discharge_date: str | None
    decision: Decision
    assistance: str | None
    review: Review | None
    payment: PaymentView | None
    reversed: bool
    recovery: str | None


class MessageView(BaseModel):
    moment: str
    text: str
    status: str
    written_at: str
    sent_at: str | None


class ResidentStatus(BaseModel):
    """A resident's settlements of one year, each with its decision in plain words, and the messages sent."""

    year: int
    phone: str | None
    sms: str
    settlements: list[SettlementView]
    messages: list[MessageView]


def _settlement(row: ResidentSettlement, words: TemplateSet, hospitals: dict[str, str],
                account: str | None) -> SettlementView:
    review = None
    if row.review_state:
        review = Review(state=row.review_state, text=words.review_states.get(row.review_state, row.review_state))
        if row.review_state == "rejected":
            review.reason, review.reason_text = row.review_reason, words.words(words.reject_reasons, row.review_reason)
    payment = None
    if row.payment_status:
        failed = row.payment_status == "failed"
        payment = PaymentView(
            status=row.payment_status, text=words.payment_states.get(row.payment_status, row.payment_status),
            amount=f"{row.paid_amount:.2f}" if row.paid_amount is not None else None,
            paid_on=row.paid_on.isoformat() if row.paid_on and not failed else None,
            account=account, reason=row.payment_reason if failed else None,
            what_to_do=words.words(words.payment_failures, row.payment_reason) if failed else None)
    reason = row.eligibility_reason
    return SettlementView(
        settlement_id=str(row.settlement_id),
        hospital=hospitals.get(row.hospital_id, row.hospital_id) if row.hospital_id else None,
        visit_type=row.visit_type, discharge_date=row.discharge_date.isoformat() if row.discharge_date else None,
        decision=Decision(eligible=row.eligible, reason=reason,
                          text=words.eligibility_reasons.get(reason, reason) if reason else None),
        assistance=f"{row.assistance:.2f}" if row.assistance is not None else None,
        review=review, payment=payment, reversed=row.reversed,
        recovery=words.review_states.get("recovery", "recovery") if row.recovery else None)


async def resident_status(db: Database, person_ref: str, year: int, words: TemplateSet,
                          hospitals: dict[str, str], area: Area | None = None) -> ResidentStatus | None:
    """One person's year. With an `area` (a counter clerk's), only the settlements inside it, and None when the
    person has none there: a clerk learns nothing about people outside their area."""
    query = select(ResidentSettlement).where(col(ResidentSettlement.person_ref) == person_ref,
                                             extract("year", col(ResidentSettlement.discharge_date)) == year)
    if area is not None:
        query = query.where(*area.where(col(ResidentSettlement.district_code),
                                        col(ResidentSettlement.subdistrict_code)))
    async with db.transaction() as session:
        rows = list((await session.execute(query.order_by(col(ResidentSettlement.discharge_date)))).scalars())
        if area is not None and not rows:
            return None
        contact = await session.get(Recipient, person_ref)
        ids = [r.settlement_id for r in rows]
        messages = list((await session.execute(select(Message).where(
            col(Message.person_ref) == person_ref, col(Message.settlement_id).in_(ids))
            .order_by(col(Message.occurred_at), col(Message.seq)))).scalars()) if ids else []
    account = f"****{contact.account_masked[-4:]}" if contact and contact.account_masked else None
    if contact is None or not contact.phone_masked:
        sms = "no_phone"
    else:
        sms = "opted_out" if contact.sms_opt_out else "on"
    return ResidentStatus(
        year=year, phone=contact.phone_masked if contact else None, sms=sms,
        settlements=[_settlement(r, words, hospitals, account) for r in rows],
        messages=[MessageView(moment=m.moment, text=m.body, status=m.status, written_at=m.created_at.isoformat(),
                              sent_at=m.sent_at.isoformat() if m.sent_at else None) for m in messages])


class MessageOut(BaseModel):
    message_id: str
    person_ref: str
    settlement_id: str | None
    moment: str
    template_version: int
    status: str
    attempts: int
    failure_reason: str | None
    not_before: str
    created_at: str
    sent_at: str | None
    delivered_at: str | None


def _message_out(m: Message) -> MessageOut:
    return MessageOut(message_id=str(m.id), person_ref=m.person_ref,
                      settlement_id=str(m.settlement_id) if m.settlement_id else None, moment=m.moment,
                      template_version=m.template_version, status=m.status, attempts=m.attempts,
                      failure_reason=m.failure_reason, not_before=m.not_before.isoformat(),
                      created_at=m.created_at.isoformat(), sent_at=m.sent_at.isoformat() if m.sent_at else None,
                      delivered_at=m.delivered_at.isoformat() if m.delivered_at else None)


async def messages(db: Database, person_ref: str | None, status: str | None, limit: int,
                   offset: int) -> list[MessageOut]:
    """Messages in the order their events happened, by person and status (no phone number and no text)."""
    query = select(Message)
    if person_ref:
        query = query.where(col(Message.person_ref) == person_ref)
    if status:
        query = query.where(col(Message.status) == status)
    query = query.order_by(col(Message.occurred_at), col(Message.seq)).limit(limit).offset(offset)
    async with db.transaction() as session:
        return [_message_out(m) for m in (await session.execute(query)).scalars()]


async def messages_by_moment(db: Database) -> dict[str, Any]:
    """How many messages of each moment are in each status."""
    async with db.transaction() as session:
        rows = (await session.execute(select(col(Message.moment), col(Message.status), func.count())
                                      .group_by(col(Message.moment), col(Message.status)))).all()
    by: dict[str, dict[str, int]] = {}
    for moment, status, count in rows:
        by.setdefault(moment, {})[status] = count
    return by
