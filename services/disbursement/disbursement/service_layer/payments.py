"""Payments: opened by approved cases, sent by the worker, finished by the bank's word (callback or poll)."""

import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar
from uuid import UUID

from opentelemetry.trace import Span
from sqlalchemy import bindparam, func, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from disbursement.adapters.bank import BankResult
from disbursement.adapters.metrics import ALARMS, BANK_ANSWERS, PAYMENT_CENTS, PAYMENTS, PAYMENTS_OPENED
from disbursement.adapters.tables import Payee, Payment, PaymentAlarm, PaymentAttempt
from disbursement.config import DisbursementSettings
from disbursement.domain.payment import (
    MAY_BE_AT_THE_BANK,
    Alarm,
    AttemptStatus,
    BankWord,
    PaymentStatus,
    business_day,
    idempotency_key,
    may_reissue,
    move,
    on_bank_answer,
    on_cancel,
)
from shared.contracts import events as ev
from shared.contracts.envelope import Envelope
from shared.contracts.topics import TRANSFER_SETTLED
from shared.db import signal_after_commit
from shared.messaging.consumer import Event
from shared.messaging.outbox import Outgoing, add_events
from shared.settings import ServiceSettings
from shared.telemetry import context_from, traceparent_of, tracer

PAYMENTS_DUE = "payments.due"
PAYMENTS_CANCELLING = "payments.cancelling"
T = TypeVar("T")
log = logging.getLogger(__name__)


def _now() -> datetime:
    return datetime.now(UTC)


def settled_event(payment: Payment, status: str, span: Span | None = None,
                  attempt: PaymentAttempt | None = None) -> Outgoing:
    """The bank's final word on a payment; `attempt` is the one the bank answered for (else the current one)."""
    data = ev.TransferSettled(payment_id=payment.id, case_id=payment.case_id, calculation_id=payment.calculation_id,
                              settlement_id=payment.settlement_id, status=status, reason=payment.failure_reason,
                              amount=payment.amount, bank_reference=payment.bank_reference,
                              attempt=attempt.attempt if attempt else payment.attempt,
                              account_version=attempt.account_version if attempt else payment.account_version)
    return Outgoing(TRANSFER_SETTLED, Envelope.wrap(data, person_ref=payment.person_ref, producer="disbursement"),
                    span)


async def handle_events(session: AsyncSession, settings: ServiceSettings, events: Sequence[Event]) -> None:
    """Consumer handler for case.decided and registry.payee."""
    payees = [e for e in events if isinstance(e.data, ev.PayeeAccountUpdated)]
    if payees:
        await _store_payees(session, payees)
    approved = [e for e in events if isinstance(e.data, ev.CaseDecided) and e.data.decision == "approved"]
    if approved:
        await _open_payments(session, approved)
    for event in events:
        if isinstance(event.data, ev.CaseDecided) and event.data.decision == "cancelled":
            await _cancel(session, settings, event)
    if payees:
        await _reissue_or_release(session, {e.envelope.person_ref for e in payees})
    if payees or approved:
        signal_after_commit(session, PAYMENTS_DUE)  # wakes the sender once this commits


async def _store_payees(session: AsyncSession, events: list[Event]) -> None:
    latest: dict[str, ev.PayeeAccountUpdated] = {}
    for e in events:
        data = e.data
        assert isinstance(data, ev.PayeeAccountUpdated)
        if e.envelope.person_ref not in latest or data.account_version > latest[e.envelope.person_ref].account_version:
            latest[e.envelope.person_ref] = data
    stmt = pg_insert(Payee).values([{"person_ref": ref, "payee_ciphertext": d.payee_ciphertext,
                                     "account_version": d.account_version, "account_masked": d.account_masked,
                                     "updated_at": _now()} for ref, d in latest.items()])
    # An older version arriving late never overwrites a newer account.
    await session.execute(stmt.on_conflict_do_update(
        index_elements=[Payee.person_ref],
        set_={c: stmt.excluded[c] for c in ("payee_ciphertext", "account_version", "account_masked", "updated_at")},
        where=Payee.account_version < stmt.excluded.account_version,
    ))


async def _open_payments(session: AsyncSession, events: list[Event]) -> None:
    """One payment per approved case: the key is stored here, before any bank call can happen."""
    refs = {e.envelope.person_ref for e in events}
    with_account = set((await session.execute(select(Payee.person_ref).where(
        Payee.person_ref.in_(list(refs))))).scalars())  # type: ignore[attr-defined]
    now = _now()
    rows = []
    for event in events:
        case = event.data
        assert isinstance(case, ev.CaseDecided)
        payment_id = uuid.uuid4()
        event.span.set_attribute("case.id", str(case.case_id))
        event.span.set_attribute("payment.id", str(payment_id))
        status = PaymentStatus.PENDING if event.envelope.person_ref in with_account else PaymentStatus.AWAITING_ACCOUNT
        rows.append({
            "id": payment_id, "case_id": case.case_id, "calculation_id": case.calculation_id,
            "settlement_id": case.settlement_id, "person_ref": event.envelope.person_ref,
            "district_code": case.district_code, "amount": case.amount, "status": status.value, "attempt": 1,
            "idempotency_key": idempotency_key(payment_id, 1), "approved_on": business_day(case.decided_at),
            "approved_at": case.decided_at, "next_attempt_at": now, "updated_at": now,
            "traceparent": traceparent_of(event.span),
        })
    opened = (await session.execute(pg_insert(Payment).on_conflict_do_nothing(
        index_elements=["case_id"]).returning(Payment.id, Payment.idempotency_key), rows)).all()
    PAYMENTS_OPENED.inc(len(opened))
    if opened:
        await session.execute(insert(PaymentAttempt), [
            {"idempotency_key": key, "payment_id": pid, "attempt": 1, "status": AttemptStatus.OPEN.value}
            for pid, key in opened])


async def _cancel(session: AsyncSession, settings: ServiceSettings, event: Event) -> None:
    """Cancelled outright only when the bank cannot hold a payable attempt; else `cancelling`, and the resolver
    asks the bank (and recalls) before anything is final."""
    case = event.data
    assert isinstance(case, ev.CaseDecided)
    payment = (await session.execute(select(Payment).where(Payment.case_id == case.case_id).with_for_update())
               ).scalar_one_or_none()
    if payment is None:
        return
    attempt = (await session.execute(select(PaymentAttempt.status).where(
        PaymentAttempt.idempotency_key == payment.idempotency_key))).scalar_one()
    verdict = on_cancel(PaymentStatus(payment.status), AttemptStatus(attempt))
    if verdict.payment == payment.status:
        return  # paid already (calculation opens a recovery) or being cancelled
    await session.execute(update(Payment).where(Payment.id == payment.id)
                          .values(status=verdict.payment.value, updated_at=_now()))
    payment.status = verdict.payment.value
    if verdict.outcome:
        await add_events(session, settings, [settled_event(payment, verdict.outcome, event.span)])
    else:
        signal_after_commit(session, PAYMENTS_CANCELLING)  # the resolver asks the bank at once


async def _reissue_or_release(session: AsyncSession, person_refs: set[str]) -> None:
    """A new account: payments waiting for one become pending; failed ones are re-issued as a new attempt
    when every attempt so far is final and unpaid in our books (the sender confirms it with the bank)."""
    now = _now()
    await session.execute(update(Payment).where(
        Payment.person_ref.in_(list(person_refs)),  # type: ignore[attr-defined]
        Payment.status == PaymentStatus.AWAITING_ACCOUNT.value).values(
        status=PaymentStatus.PENDING.value, next_attempt_at=now, updated_at=now))
    versions = dict((await session.execute(select(Payee.person_ref, Payee.account_version).where(
        Payee.person_ref.in_(list(person_refs))))).all())  # type: ignore[attr-defined]
    failed = (await session.execute(select(Payment).where(
        Payment.person_ref.in_(list(person_refs)),  # type: ignore[attr-defined]
        Payment.status == PaymentStatus.FAILED.value).with_for_update())).scalars().all()
    for payment in failed:
        if payment.account_version is not None and versions.get(payment.person_ref, 0) <= payment.account_version:
            continue  # the same account that failed: re-sending cannot help
        earlier = [AttemptStatus(a) for a in (await session.execute(select(PaymentAttempt.status).where(
            PaymentAttempt.payment_id == payment.id))).scalars()]
        if not may_reissue(earlier):
            continue
        attempt = payment.attempt + 1
        key = idempotency_key(payment.id, attempt)
        await session.execute(insert(PaymentAttempt).values(idempotency_key=key, payment_id=payment.id,
                                                            attempt=attempt, status=AttemptStatus.OPEN.value))
        await session.execute(update(Payment).where(Payment.id == payment.id).values(
            status=move(PaymentStatus.FAILED, PaymentStatus.PENDING).value, attempt=attempt, idempotency_key=key,
            failure_reason=None, bank_reference=None, next_attempt_at=now, updated_at=now))


@dataclass(frozen=True)
class Answer:
    """The bank's own word for one key (from a status inquiry or a submission), never a callback's."""

    key: str
    word: BankWord
    bank_reference: str | None = None
    reason: str | None = None

    @classmethod
    def of(cls, key: str, result: BankResult | None) -> "Answer":
        if result is None:
            return cls(key, BankWord.NOT_RECEIVED)
        # The bank's free text is cut to what the columns hold: an odd answer must not fail the whole pass.
        return cls(key, BankWord(result.status.value), (result.bank_reference or "")[:64] or None,
                   (result.reason or "")[:64] or None)


def _detached(model: type[T], row: Any) -> T:
    """A row as a plain model object the session does not track (changes are written in bulk, by hand)."""
    return model(**dict(row._mapping))


async def apply_bank_answers(session: AsyncSession, settings: DisbursementSettings, answers: Sequence[Answer]
                             ) -> list[str]:
    """Record what the bank said about attempts (`domain.payment.on_bank_answer`); a final word emits one
    TransferSettled; alarms are raised in the same transaction. Returns the keys to recall at the bank."""
    if not answers:
        return []
    attempts_t, payments_t = PaymentAttempt.__table__, Payment.__table__  # type: ignore[attr-defined]
    keys = {a.key for a in answers}
    # The payments are locked first, then their attempts read: every writer of an attempt's bank word holds its
    # payment's lock, so what is read here is the latest word, never one a concurrent pass just replaced.
    payment_ids = set((await session.execute(select(attempts_t.c.payment_id).where(
        attempts_t.c.idempotency_key.in_(keys)))).scalars())
    payments = {p.id: p for p in (_detached(Payment, r) for r in (await session.execute(
        select(payments_t).where(payments_t.c.id.in_(payment_ids)).order_by(payments_t.c.id).with_for_update())
    ).all())} if payment_ids else {}
    attempts = {a.idempotency_key: a for a in (_detached(PaymentAttempt, r) for r in (await session.execute(
        select(attempts_t).where(attempts_t.c.idempotency_key.in_(keys)))).all())}
    settled: dict[UUID, set[str]] = {pid: set() for pid in payment_ids}
    if payment_ids:
        for pid, key in (await session.execute(select(attempts_t.c.payment_id, attempts_t.c.idempotency_key).where(
                attempts_t.c.payment_id.in_(payment_ids),
                attempts_t.c.status == AttemptStatus.SETTLED.value))).all():
            settled[pid].add(key)
    now = _now()
    quiet_before = now - timedelta(seconds=settings.sending_stale_s)
    outgoing: list[Outgoing] = []
    alarms: list[dict[str, Any]] = []
    recalls: list[str] = []
    dirty_payments: set[UUID] = set()
    dirty_attempts: set[str] = set()
    resend = False
    for answer in answers:
        attempt = attempts.get(answer.key)
        if attempt is None:
            BANK_ANSWERS.labels("not_ours").inc()
            log.warning("bank answer for a key we never issued", extra={"idempotency_key": answer.key})
            continue
        payment = payments[attempt.payment_id]
        before = (PaymentStatus(payment.status), AttemptStatus(attempt.status))
        verdict = on_bank_answer(*before, answer.word, current=attempt.attempt == payment.attempt,
                                 settled_elsewhere=bool(settled[payment.id] - {answer.key}),
                                 quiet=attempt.sent_at is None or attempt.sent_at < quiet_before)
        if verdict.recall:
            recalls.append(answer.key)
        if (verdict.payment, verdict.attempt) == before and not verdict.outcome and not verdict.alarm:
            continue
        BANK_ANSWERS.labels(answer.word.value).inc()
        attempt.status = verdict.attempt.value
        attempt.bank_reference = answer.bank_reference or attempt.bank_reference
        if verdict.attempt is AttemptStatus.FAILED:
            attempt.reason = answer.reason
        if verdict.attempt is AttemptStatus.SETTLED and before[1] is not AttemptStatus.SETTLED:
            attempt.settled_at = now
            settled[payment.id].add(answer.key)
        dirty_attempts.add(answer.key)
        if verdict.payment != before[0] or verdict.outcome:
            if verdict.payment is PaymentStatus.PENDING and before[0] is PaymentStatus.SENDING:
                payment.next_attempt_at, resend = now, True
            payment.status = verdict.payment.value
            if verdict.outcome == "settled":
                payment.bank_reference, payment.failure_reason = attempt.bank_reference, None
            elif verdict.outcome == "failed":
                payment.bank_reference, payment.failure_reason = attempt.bank_reference, answer.reason
            dirty_payments.add(payment.id)
        if verdict.outcome:
            PAYMENTS.labels(verdict.outcome).inc()
            PAYMENT_CENTS.labels(verdict.outcome).inc(int(payment.amount * 100))
            with tracer.start_as_current_span(f"transfer {verdict.outcome}",
                                              context=context_from(payment.traceparent)) as span:
                span.set_attribute("payment.id", str(payment.id))
                span.set_attribute("settlement.id", str(payment.settlement_id))
                outgoing.append(settled_event(payment, verdict.outcome, span, attempt=attempt))
        if verdict.alarm:
            alarms.append(alarm_row(verdict.alarm, answer.key, payment, attempt, now))
    if dirty_payments:  # executemany statements for the whole pass, not round trips per answer
        await session.execute(update(payments_t).where(payments_t.c.id == bindparam("pid")).values(
            status=bindparam("status"), bank_reference=bindparam("ref"), failure_reason=bindparam("reason"),
            next_attempt_at=bindparam("next_at"), updated_at=now), [
            {"pid": p.id, "status": p.status, "ref": p.bank_reference, "reason": p.failure_reason,
             "next_at": p.next_attempt_at} for p in (payments[i] for i in dirty_payments)])
    if dirty_attempts:
        await session.execute(update(attempts_t).where(attempts_t.c.idempotency_key == bindparam("key")).values(
            status=bindparam("status"), reason=bindparam("reason"), bank_reference=bindparam("ref"),
            settled_at=bindparam("settled")), [
            {"key": a.idempotency_key, "status": a.status, "reason": a.reason, "ref": a.bank_reference,
             "settled": a.settled_at} for a in (attempts[k] for k in dirty_attempts)])
    await raise_alarms(session, alarms)
    await add_events(session, settings, outgoing)
    if resend:
        signal_after_commit(session, PAYMENTS_DUE)
    return recalls


def alarm_row(kind: Alarm, key: str, payment: Payment, attempt: PaymentAttempt, now: datetime,
              detail: str | None = None) -> dict[str, Any]:
    """An alarm about one attempt. Money paid twice, or paid for a cancelled case, is to be recovered."""
    recovery = payment.amount if kind in (Alarm.DOUBLE_PAYMENT, Alarm.PAID_AFTER_CANCEL) else None
    return {"id": uuid.uuid4(), "kind": kind.value, "subject": key, "idempotency_key": key,
            "payment_id": payment.id, "case_id": payment.case_id, "district_code": payment.district_code,
            "amount": payment.amount, "recovery_amount": recovery, "bank_reference": attempt.bank_reference,
            "detail": detail or ALARM_DETAIL[kind], "raised_at": now}


ALARM_DETAIL = {
    Alarm.DOUBLE_PAYMENT: "a second attempt of this payment settled at the bank",
    Alarm.PAID_AFTER_CANCEL: "the bank paid a case that was cancelled or reversed",
    Alarm.CONTRADICTION: "the bank no longer knows an attempt it accepted or settled",
    Alarm.UNKNOWN_TRANSFER: "the bank's statement books a transfer we never issued",
    Alarm.BOOKED_TWICE: "the bank's statement books this attempt more than once",
    Alarm.AMOUNT_MISMATCH: "the statement's amount differs from the payment's",
    Alarm.ACCOUNT_MISMATCH: "the statement's account differs from the one the attempt was sent to",
    Alarm.BOOKED_NOT_SETTLED: "booked in the bank's statement, yet the bank's status for the key is not settled",
}


async def raise_alarms(session: AsyncSession, rows: list[dict[str, Any]]) -> int:
    """Store alarms (one per kind and subject, however often it is found); counts the new ones."""
    if not rows:
        return 0
    raised = (await session.execute(pg_insert(PaymentAlarm).on_conflict_do_nothing(
        constraint="uq_payment_alarm").returning(PaymentAlarm.kind), rows)).scalars().all()
    for kind in raised:
        ALARMS.labels(kind).inc()
        log.error("payment alarm raised", extra={"alarm": kind})
    return len(raised)


async def claim_due(session: AsyncSession, limit: int) -> list[Payment]:
    """Take pending payments for sending (SKIP LOCKED: several workers never take the same one)."""
    now = _now()
    due = list((await session.execute(
        select(Payment).where(Payment.status == PaymentStatus.PENDING.value, Payment.next_attempt_at <= now)
        .order_by(Payment.next_attempt_at).limit(limit).with_for_update(skip_locked=True))).scalars())
    if due:
        await session.execute(update(Payment).where(Payment.id.in_([p.id for p in due]))  # type: ignore[attr-defined]
                              .values(status=PaymentStatus.SENDING.value, updated_at=now))
    return due


async def mark_sent(session: AsyncSession, sent: dict[str, str]) -> None:
    """Attempts about to be handed to the bank (key -> account fingerprint): from now on the bank may hold
    them, so none is cancelled without asking."""
    if sent:
        attempts_t = PaymentAttempt.__table__  # type: ignore[attr-defined]
        await session.execute(update(attempts_t).where(
            attempts_t.c.idempotency_key == bindparam("key"),
            # (an IN list cannot be an executemany parameter)
            (attempts_t.c.status == AttemptStatus.OPEN.value) | (attempts_t.c.status == AttemptStatus.UNKNOWN.value),
        ).values(status=AttemptStatus.UNKNOWN.value, sent_at=_now(), account_fingerprint=bindparam("fingerprint")),
            [{"key": k, "fingerprint": f} for k, f in sent.items()])


async def retry_later(session: AsyncSession, keys: list[str], delay_s: float) -> None:
    """The bank could not be reached: the same attempt (same key) goes again later. The attempt stays
    `unknown`: the bank may have booked it before the line failed."""
    if keys:
        now = _now()
        await session.execute(update(Payment).where(
            Payment.idempotency_key.in_(keys), Payment.status == PaymentStatus.SENDING.value,  # type: ignore[attr-defined]
        ).values(status=PaymentStatus.PENDING.value, next_attempt_at=now + timedelta(seconds=delay_s),
                 updated_at=now))


async def claim_unresolved(session: AsyncSession, ask_after_s: float, limit: int = 500) -> list[str]:
    """Keys the bank may hold without a final word, oldest question first; each is stamped as asked now so
    the next pass asks others (SKIP LOCKED: two resolvers never ask the same). Attempts of payments being
    cancelled are asked at once."""
    now = _now()
    a, p = PaymentAttempt.__table__, Payment.__table__  # type: ignore[attr-defined]
    last_asked = func.coalesce(a.c.checked_at, a.c.sent_at)
    picked = (select(a.c.idempotency_key).join(p, p.c.id == a.c.payment_id).where(
        a.c.status.in_([s.value for s in MAY_BE_AT_THE_BANK]),
        (last_asked < now - timedelta(seconds=ask_after_s))
        | ((p.c.status == PaymentStatus.CANCELLING.value) & (last_asked < now - timedelta(seconds=0.5))))
        .order_by(last_asked).limit(limit).with_for_update(of=a, skip_locked=True))
    return list((await session.execute(update(a).where(a.c.idempotency_key.in_(picked.scalar_subquery()))
                                       .values(checked_at=now).returning(a.c.idempotency_key))).scalars())


async def release_unsent(session: AsyncSession, stale_s: float) -> int:
    """Payments left `sending` by a crash before their attempt was handed to the bank (still `open`): queued
    again under the same key. (Handed over ones are `unknown`: the bank is asked about them instead.)"""
    now = _now()
    p, a = Payment.__table__, PaymentAttempt.__table__  # type: ignore[attr-defined]
    released = (await session.execute(update(p).where(
        p.c.status == PaymentStatus.SENDING.value, p.c.updated_at < now - timedelta(seconds=stale_s),
        p.c.idempotency_key.in_(select(a.c.idempotency_key).where(a.c.status == AttemptStatus.OPEN.value)),
    ).values(status=PaymentStatus.PENDING.value, next_attempt_at=now, updated_at=now).returning(p.c.id))).all()
    if released:
        signal_after_commit(session, PAYMENTS_DUE)
    return len(released)
