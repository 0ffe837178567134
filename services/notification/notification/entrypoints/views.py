"""The resident's status view, read from the view table and the messages (never through the domain)."""


from pydantic import BaseModel
from sqlalchemy import extract, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from notification.adapters.tables import Message, Recipient, ResidentSettlement
from notification.domain.templates import TemplateSet


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


async def resident_status(session: AsyncSession, person_ref: str, year: int, words: TemplateSet,
                          hospitals: dict[str, str], subdistrict: str | None = None) -> ResidentStatus | None:
    """One person's year. With `subdistrict` (a counter clerk), only that sub-district's settlements, and None
    when the person has none there: a clerk learns nothing about people outside their sub-district."""
    query = select(ResidentSettlement).where(col(ResidentSettlement.person_ref) == person_ref,
                                             extract("year", col(ResidentSettlement.discharge_date)) == year)
    if subdistrict is not None:
        query = query.where(col(ResidentSettlement.subdistrict_code) == subdistrict)
    rows = list((await session.execute(query.order_by(col(ResidentSettlement.discharge_date)))).scalars())
    if subdistrict is not None and not rows:
        return None
    contact = await session.get(Recipient, person_ref)
    account = f"****{contact.account_masked[-4:]}" if contact and contact.account_masked else None
    ids = [r.settlement_id for r in rows]
    messages = list((await session.execute(select(Message).where(
        col(Message.person_ref) == person_ref, col(Message.settlement_id).in_(ids))
        .order_by(col(Message.occurred_at), col(Message.seq)))).scalars()) if ids else []
    if contact is None or not contact.phone_masked:
        sms = "no_phone"
    else:
        sms = "opted_out" if contact.sms_opt_out else "on"
    return ResidentStatus(
        year=year, phone=contact.phone_masked if contact else None, sms=sms,
        settlements=[_settlement(r, words, hospitals, account) for r in rows],
        messages=[MessageView(moment=m.moment, text=m.body, status=m.status, written_at=m.created_at.isoformat(),
                              sent_at=m.sent_at.isoformat() if m.sent_at else None) for m in messages])
