"""Payments: opened by approved cases, sent by the worker, finished by the bank's word (callback or poll)."""

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from opentelemetry.trace import Span
from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from disbursement.adapters.bank import BankResult, BankStatus
from disbursement.adapters.metrics import PAYMENT_CENTS, PAYMENTS, PAYMENTS_OPENED
from disbursement.adapters.tables import Payee, Payment, PaymentAttempt
from disbursement.domain.payment import CANCELLABLE, PaymentStatus, business_day, idempotency_key, move
from shared.contracts import events as ev
from shared.contracts.envelope import Envelope
from shared.contracts.topics import TRANSFER_SETTLED
from shared.db import signal_after_commit
from shared.messaging.consumer import Event
from shared.messaging.outbox import Outgoing, add_events
from shared.settings import ServiceSettings
from shared.telemetry import context_from, traceparent_of, tracer

PAYMENTS_DUE = "payments.due"


def _now() -> datetime:
    return datetime.now(UTC)


def settled_event(payment: Payment, status: str, span: Span | None = None) -> Outgoing:
    data = ev.TransferSettled(payment_id=payment.id, case_id=payment.case_id, calculation_id=payment.calculation_id,
                              settlement_id=payment.settlement_id, status=status, reason=payment.failure_reason,
                              amount=payment.amount, bank_reference=payment.bank_reference, attempt=payment.attempt)
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
            {"idempotency_key": key, "payment_id": pid, "attempt": 1, "status": "open"} for pid, key in opened])


async def _cancel(session: AsyncSession, settings: ServiceSettings, event: Event) -> None:
    case = event.data
    assert isinstance(case, ev.CaseDecided)
    payment = (await session.execute(select(Payment).where(Payment.case_id == case.case_id).with_for_update())
               ).scalar_one_or_none()
    if payment is None or PaymentStatus(payment.status) not in CANCELLABLE:
        return  # already with the bank: it will settle, and calculation opens a recovery
    await session.execute(update(Payment).where(Payment.id == payment.id)
                          .values(status=PaymentStatus.CANCELLED.value, updated_at=_now()))
    payment.status = PaymentStatus.CANCELLED.value
    await add_events(session, settings, [settled_event(payment, "cancelled", event.span)])


async def _reissue_or_release(session: AsyncSession, person_refs: set[str]) -> None:
    """A new account: payments waiting for one become pending; failed ones are re-issued as a new attempt."""
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
        attempt = payment.attempt + 1
        key = idempotency_key(payment.id, attempt)
        await session.execute(insert(PaymentAttempt).values(idempotency_key=key, payment_id=payment.id,
                                                            attempt=attempt, status="open"))
        await session.execute(update(Payment).where(Payment.id == payment.id).values(
            status=move(PaymentStatus.FAILED, PaymentStatus.PENDING).value, attempt=attempt, idempotency_key=key,
            failure_reason=None, bank_reference=None, next_attempt_at=now, updated_at=now))


async def apply_bank_results(session: AsyncSession, settings: ServiceSettings,
                             results: Sequence[BankResult]) -> int:
    """Record what the bank said about attempts; a final word emits TransferSettled once. Returns finals."""
    keys = [r.idempotency_key for r in results]
    payments = {p.idempotency_key: p for p in (await session.execute(
        select(Payment).where(Payment.idempotency_key.in_(keys)).with_for_update())).scalars()}  # type: ignore[attr-defined]
    outgoing, now = [], _now()
    payment_rows: dict[object, dict[str, object]] = {}  # the last word per payment and per attempt is written
    attempt_rows: dict[str, dict[str, object]] = {}
    for result in results:
        payment = payments.get(result.idempotency_key)
        if payment is None:
            continue  # an old attempt's key, or not ours: the current attempt is what counts
        current = PaymentStatus(payment.status)
        new = {BankStatus.ACCEPTED: PaymentStatus.ACCEPTED, BankStatus.SETTLED: PaymentStatus.SETTLED,
               BankStatus.FAILED: PaymentStatus.FAILED}[result.status]
        if current in (PaymentStatus.SETTLED, PaymentStatus.FAILED) or (
                current == PaymentStatus.ACCEPTED and new == PaymentStatus.ACCEPTED):
            continue  # duplicate news (a second callback, a poll after the callback)
        move(current, new)
        changes = {"status": new.value, "bank_reference": result.bank_reference or payment.bank_reference,
                   "failure_reason": result.reason if new == PaymentStatus.FAILED else None}
        payment_rows[payment.id] = {"payment_id": payment.id, **changes}
        attempt_rows[result.idempotency_key] = {"key": result.idempotency_key, "status": new.value,
                                                "reason": changes["failure_reason"]}
        for name, value in changes.items():
            setattr(payment, name, value)
        PAYMENTS.labels(new.value).inc()
        PAYMENT_CENTS.labels(new.value).inc(int(payment.amount * 100))
        if new in (PaymentStatus.SETTLED, PaymentStatus.FAILED):
            outcome_context = context_from(payment.traceparent)
            with tracer.start_as_current_span(f"transfer {new.value}", context=outcome_context) as span:
                span.set_attribute("payment.id", str(payment.id))
                span.set_attribute("settlement.id", str(payment.settlement_id))
                outgoing.append(settled_event(payment, new.value, span))
    if payment_rows:  # two executemany statements for the whole pass, not two round trips per answer
        payments_t, attempts_t = Payment.__table__, PaymentAttempt.__table__  # type: ignore[attr-defined]
        await session.execute(update(payments_t).where(payments_t.c.id == bindparam("payment_id")).values(
            status=bindparam("status"), bank_reference=bindparam("bank_reference"),
            failure_reason=bindparam("failure_reason"), updated_at=now), list(payment_rows.values()))
        await session.execute(update(attempts_t).where(attempts_t.c.idempotency_key == bindparam("key")).values(
            status=bindparam("status"), reason=bindparam("reason")), list(attempt_rows.values()))
    await add_events(session, settings, outgoing)
    return len(outgoing)


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


async def retry_later(session: AsyncSession, keys: list[str], delay_s: float, stale_before: datetime | None = None
                      ) -> None:
    """The bank could not be reached (or never got it): the same attempt (same key) goes again later.

    With `stale_before`, only rows left `sending` since before then: never a call still in progress.
    """
    if keys:
        now = _now()
        conditions = [Payment.idempotency_key.in_(keys), Payment.status == PaymentStatus.SENDING.value]  # type: ignore[attr-defined]
        if stale_before is not None:
            conditions.append(Payment.updated_at < stale_before)  # type: ignore[arg-type]
        await session.execute(update(Payment).where(*conditions).values(
            status=PaymentStatus.PENDING.value, next_attempt_at=now + timedelta(seconds=delay_s), updated_at=now))
        if delay_s <= 0:
            signal_after_commit(session, PAYMENTS_DUE)


async def unresolved(session: AsyncSession, accepted_after_s: float, sending_after_s: float,
                     limit: int = 500) -> tuple[list[str], list[str]]:
    """Keys the bank owes us an answer on: (accepted without a final word, left `sending` by a crash)."""
    now = _now()
    rows = (await session.execute(select(Payment.idempotency_key, Payment.status).where(
        ((Payment.status == PaymentStatus.ACCEPTED.value)
         & (Payment.updated_at < now - timedelta(seconds=accepted_after_s)))  # type: ignore[operator]
        | ((Payment.status == PaymentStatus.SENDING.value)
           & (Payment.updated_at < now - timedelta(seconds=sending_after_s)))  # type: ignore[operator]
    ).limit(limit))).all()
    return ([k for k, s in rows if s == PaymentStatus.ACCEPTED.value],
            [k for k, s in rows if s == PaymentStatus.SENDING.value])
