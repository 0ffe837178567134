"""Payments: opened by approved cases, re-issued by corrected accounts, finished by the bank's own word.

Handlers load `Payment` aggregates from the unit of work's repositories, call them, and turn what they
recorded into outbox events, alarms and wake-ups; the repositories write the changes back in bulk.
"""

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import Span

from disbursement.adapters.bank import BankResult
from disbursement.adapters.metrics import ALARMS, BANK_ANSWERS, PAYMENT_CENTS, PAYMENTS, PAYMENTS_OPENED
from disbursement.adapters.repositories import PayeeAccount
from disbursement.domain.payment import (
    Alarm,
    AlarmRaised,
    BankWord,
    CancelAsked,
    Payment,
    RecallWanted,
    SendAgain,
    TransferSettled,
)
from disbursement.service_layer.unit_of_work import DisbursementUnitOfWork
from shared.contracts import events as ev
from shared.contracts.envelope import Envelope
from shared.contracts.topics import TRANSFER_SETTLED
from shared.ids import new_id
from shared.messaging.consumer import Event
from shared.messaging.outbox import Outgoing
from shared.telemetry import entry_spans, parse_traceparent, traceparent_of

log = logging.getLogger(__name__)


def _now() -> datetime:
    return datetime.now(UTC)


async def handle_events(uow: DisbursementUnitOfWork, events: Sequence[Event]) -> None:
    """Consumer handler for case.decided and registry.payee: one statement per table for the whole batch."""
    payees = [(ref, data) for e in events if isinstance(e.data, ev.PayeeAccountsUpdated | ev.PayeeAccountUpdated)
              for ref, data in ev.per_person(e.envelope.person_ref, e.data)]  # one person or many (ADR 0033)
    await _store_payees(uow, payees)
    approved = [e for e in events if isinstance(e.data, ev.CaseDecided) and e.data.decision == "approved"]
    await _open_payments(uow, approved)
    await _cancel(uow, [e for e in events if isinstance(e.data, ev.CaseDecided) and e.data.decision == "cancelled"])
    if payees:
        await _account_arrived(uow, {ref for ref, _ in payees})
    if payees or approved:
        uow.wake_sender()


async def _store_payees(uow: DisbursementUnitOfWork, payees: list[tuple[str, ev.EventData]]) -> None:
    latest: dict[str, PayeeAccount] = {}
    for ref, data in payees:
        assert isinstance(data, ev.PayeeAccountUpdated)
        if ref not in latest or data.account_version > latest[ref].version:
            latest[ref] = PayeeAccount(ref, data.payee_ciphertext, data.account_version, data.account_masked)
    await uow.payees.store(latest.values(), _now())


async def _open_payments(uow: DisbursementUnitOfWork, events: list[Event]) -> None:
    """One payment per approved case: its key is stored here, before any bank call can happen."""
    if not events:
        return
    with_account = await uow.payees.versions({e.envelope.person_ref for e in events})
    now, payments = _now(), []
    for event in events:
        case = event.data
        assert isinstance(case, ev.CaseDecided)
        payment = Payment.open(case_id=case.case_id, calculation_id=case.calculation_id,
                               settlement_id=case.settlement_id, person_ref=event.envelope.person_ref,
                               district_code=case.district_code, amount=case.amount, decided_at=case.decided_at,
                               has_account=event.envelope.person_ref in with_account, now=now,
                               traceparent=traceparent_of(event.span))
        event.span.set_attribute("case.id", str(case.case_id))
        event.span.set_attribute("payment.id", str(payment.id))
        payments.append(payment)
    PAYMENTS_OPENED.inc(len(await uow.payments.add(payments)))


async def _cancel(uow: DisbursementUnitOfWork, events: list[Event]) -> None:
    """Cancelled outright only when the bank cannot hold a payable attempt; else `cancelling`, and the resolver
    asks the bank (and recalls) before anything is final."""
    if not events:
        return
    payments = await uow.payments.of_cases({e.data.case_id for e in events if isinstance(e.data, ev.CaseDecided)})
    for event in events:
        assert isinstance(event.data, ev.CaseDecided)
        if (payment := payments.get(event.data.case_id)) is not None:
            payment.cancel()
            await _publish(uow, payment, event.span)
    await uow.payments.save(payments.values(), _now())


async def _account_arrived(uow: DisbursementUnitOfWork, person_refs: set[str]) -> None:
    """A new account: payments waiting for one become pending, failed ones are re-issued as a new attempt when
    every attempt so far is final and unpaid in our books (the sender confirms it with the bank)."""
    payments = await uow.payments.waiting_for_an_account(person_refs)
    if not payments:
        return
    versions, now = await uow.payees.versions(person_refs), _now()
    for payment in payments:
        payment.account_arrived(versions.get(payment.person_ref), now=now)
    await uow.payments.save(payments, now)


def transfer_settled(payment: Payment, outcome: TransferSettled, span: Span | None = None) -> Outgoing:
    """The TransferSettled event of one final word on a payment."""
    data = ev.TransferSettled(payment_id=payment.id, case_id=payment.case_id, calculation_id=payment.calculation_id,
                              settlement_id=payment.settlement_id, status=outcome.status, reason=outcome.reason,
                              amount=payment.amount, bank_reference=outcome.bank_reference, attempt=outcome.attempt,
                              account_version=outcome.account_version)
    return Outgoing(TRANSFER_SETTLED, Envelope.wrap(data, person_ref=payment.person_ref, producer="disbursement"),
                    span)


async def _publish(uow: DisbursementUnitOfWork, payment: Payment, span: Span | None = None) -> list[str]:
    """What the aggregate recorded: final words to the outbox, alarms stored, wake-ups; returns keys to recall.

    `span`: the consumer's (a cancellation); otherwise each final word from the bank gets its own span under the
    payment's trace and is counted."""
    recalls, alarms, now = [], [], _now()
    for event in payment.events:
        match event:
            case TransferSettled() if span is not None:
                uow.emit(transfer_settled(payment, event, span))
            case TransferSettled():
                PAYMENTS.labels(event.status).inc()
                PAYMENT_CENTS.labels(event.status).inc(int(payment.amount * 100))
                with trace.use_span(entry_spans.start(f"transfer {event.status}",
                                                      parse_traceparent(payment.traceparent)), end_on_exit=True) as own:
                    own.set_attribute("payment.id", str(payment.id))
                    own.set_attribute("settlement.id", str(payment.settlement_id))
                    uow.emit(transfer_settled(payment, event, own))
            case AlarmRaised(kind, key):
                alarms.append(alarm_row(kind, key, payment, payment.attempts[key].bank_reference, now))
            case RecallWanted(key):
                recalls.append(key)
            case SendAgain():
                uow.wake_sender()
            case CancelAsked():
                uow.wake_resolver()
    payment.events.clear()
    await raise_alarms(uow, alarms)
    return recalls


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


async def apply_bank_answers(uow: DisbursementUnitOfWork, answers: Sequence[Answer], *, quiet_after_s: float
                             ) -> list[str]:
    """Record what the bank said about attempts (`Payment.hear`); a final word emits one TransferSettled and
    alarms are raised in the same transaction. `quiet_after_s`: how long after an attempt was last handed over
    no call with its key can still arrive. Returns the keys to recall at the bank."""
    if not answers:
        return []
    payments = await uow.payments.answered({a.key for a in answers})
    now = _now()
    quiet_before = now - timedelta(seconds=quiet_after_s)
    for answer in answers:
        payment = payments.get(answer.key)
        if payment is None:
            BANK_ANSWERS.labels("not_ours").inc()
            log.warning("bank answer for a key we never issued", extra={"idempotency_key": answer.key})
            continue
        if payment.hear(answer.key, answer.word, answer.bank_reference, answer.reason, now=now,
                        quiet_before=quiet_before):
            BANK_ANSWERS.labels(answer.word.value).inc()
    recalls = []
    distinct = list({p.id: p for p in payments.values()}.values())
    for payment in distinct:
        recalls += await _publish(uow, payment)
    await uow.payments.save(distinct, now)
    return recalls


def alarm_row(kind: Alarm, key: str, payment: Payment, bank_reference: str | None, now: datetime,
              detail: str | None = None) -> dict[str, Any]:
    """An alarm about one attempt. Money paid twice, or paid for a cancelled case, is to be recovered."""
    recovery = payment.amount if kind in (Alarm.DOUBLE_PAYMENT, Alarm.PAID_AFTER_CANCEL) else None
    return {"id": new_id(), "kind": kind.value, "subject": key, "idempotency_key": key,
            "payment_id": payment.id, "case_id": payment.case_id, "district_code": payment.district_code,
            "amount": payment.amount, "recovery_amount": recovery, "bank_reference": bank_reference,
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


async def raise_alarms(uow: DisbursementUnitOfWork, rows: list[dict[str, Any]]) -> int:
    """Store alarms (one per kind and subject, however often it is found); counts the new ones."""
    raised = await uow.alarms.add(rows)
    for kind in raised:
        ALARMS.labels(kind).inc()
        log.error("payment alarm raised", extra={"alarm": kind})
    return len(raised)
