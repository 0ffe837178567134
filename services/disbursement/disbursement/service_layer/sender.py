"""The background workers: send due payments, and resolve the ones the bank still owes an answer on."""

import asyncio
import contextlib
import hashlib
import hmac
import logging
from collections.abc import Sequence
from uuid import UUID

import orjson
from opentelemetry.trace import SpanKind
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from disbursement.adapters.bank import (
    BankGateway,
    BankRejected,
    BankResult,
    BankStatus,
    BankUnavailable,
    PaymentInstruction,
)
from disbursement.adapters.metrics import CALLBACKS_UNCONFIRMED
from disbursement.adapters.tables import Payee, Payment, PaymentAttempt
from disbursement.config import DisbursementSettings
from disbursement.domain.payment import BankWord, PaymentStatus
from disbursement.service_layer.payments import (
    PAYMENTS_CANCELLING,
    PAYMENTS_DUE,
    Answer,
    apply_bank_answers,
    claim_due,
    claim_unresolved,
    mark_sent,
    release_unsent,
    retry_later,
)
from shared.security.crypto import FieldCipher
from shared.service import Runtime
from shared.telemetry import context_from, tracer

log = logging.getLogger(__name__)


async def _send_one(gateway: BankGateway, payment: Payment, payee: dict[str, str], callback_url: str,
                    ) -> BankResult | None:
    """One bank call (with the adapter's own bounded retries). None: the bank is unreachable, try later."""
    with tracer.start_as_current_span("bank transfer", context=context_from(payment.traceparent),
                                      kind=SpanKind.CLIENT) as span:
        span.set_attribute("payment.id", str(payment.id))
        span.set_attribute("case.id", str(payment.case_id))
        span.set_attribute("settlement.id", str(payment.settlement_id))
        span.set_attribute("person_ref", payment.person_ref)
        span.set_attribute("payment.amount", f"{payment.amount:.2f}")
        span.set_attribute("payment.attempt", payment.attempt)
        instruction = PaymentInstruction(
            idempotency_key=payment.idempotency_key, amount=payment.amount, creditor_account=payee["account"],
            creditor_name=payee["name"], remittance_info=f"medical assistance case {payment.case_id}",
            callback_url=callback_url,
        )
        try:
            return await gateway.submit(instruction)
        except BankRejected as exc:
            span.set_attribute("payment.rejected", True)
            return BankResult(payment.idempotency_key, None, BankStatus.FAILED, getattr(exc, "reason", "rejected"))
        except BankUnavailable:
            span.set_attribute("payment.retry_later", True)
            return None


async def apply_safely(runtime: Runtime, answers: Sequence[Answer]) -> tuple[list[str], list[Answer]]:
    """Apply answers in one transaction; if that fails, each answer in its own, so one that cannot be applied
    never holds up the others. Returns (keys to recall, answers not applied)."""
    settings: DisbursementSettings = runtime.settings  # type: ignore[assignment]
    try:
        async with runtime.db.transaction() as session:
            return await apply_bank_answers(session, settings, answers), []
    except Exception:
        if len(answers) <= 1:
            log.exception("a bank answer could not be applied; asked again later")
            return [], list(answers)
    recalls, left = [], []
    for answer in answers:
        try:
            async with runtime.db.transaction() as session:
                recalls += await apply_bank_answers(session, settings, [answer])
        except Exception:
            log.exception("a bank answer could not be applied; asked again later",
                          extra={"idempotency_key": answer.key})
            left.append(answer)
    return recalls, left


def fingerprint(runtime: Runtime, account: str) -> str:
    """The account an attempt went to, comparable with the bank's statement, not reversible to the number."""
    pepper = runtime.settings.person_ref_pepper.get_secret_value().encode()
    return hmac.new(pepper, f"account:{account}".encode(), hashlib.sha256).hexdigest()


async def _earlier_attempts(session: AsyncSession, due: list[Payment]) -> dict[UUID, list[str]]:
    reissued = {p.id: p.attempt for p in due if p.attempt > 1}
    if not reissued:
        return {}
    rows = (await session.execute(select(PaymentAttempt.payment_id, PaymentAttempt.idempotency_key,
                                         PaymentAttempt.attempt).where(
        PaymentAttempt.payment_id.in_(list(reissued))))).all()  # type: ignore[attr-defined]
    earlier: dict[UUID, list[str]] = {pid: [] for pid in reissued}
    for pid, key, number in rows:
        if number < reissued[pid]:
            earlier[pid].append(key)
    return earlier


async def send_due_payments(runtime: Runtime, stopping: asyncio.Event) -> None:
    """Claim due payments in batches and send them concurrently (bounded), recording every answer.

    A re-issued attempt goes only after the bank confirms every earlier attempt of the payment final and unpaid.
    """
    settings = runtime.settings
    gateway: BankGateway = runtime.extras["bank"]
    cipher: FieldCipher = runtime.extras["payee_cipher"]
    semaphore = asyncio.Semaphore(settings.bank_concurrency)
    callback_url = f"{settings.callback_base_url}/v1/bank/callbacks"
    due_signal = asyncio.Event()
    runtime.db.on_commit(PAYMENTS_DUE, due_signal.set)

    async def ask(key: str) -> Answer | None:
        async with semaphore:
            try:
                return Answer.of(key, await gateway.status(key))
            except Exception:  # unreachable or unreadable: the re-issue waits
                return None

    while not stopping.is_set():
        due_signal.clear()  # before the claim: payments opened meanwhile wake the next pass
        try:
            async with runtime.db.transaction() as session:
                due = await claim_due(session, settings.worker_batch)
                payees = {p.person_ref: p for p in (await session.execute(select(Payee).where(
                    Payee.person_ref.in_([d.person_ref for d in due])))).scalars()}  # type: ignore[attr-defined]
                missing = [d.id for d in due if d.person_ref not in payees]
                if missing:
                    await session.execute(update(Payment).where(Payment.id.in_(missing))  # type: ignore[attr-defined]
                                          .values(status=PaymentStatus.AWAITING_ACCOUNT.value))
                due = [d for d in due if d.person_ref in payees]
                earlier = await _earlier_attempts(session, due)
                if due:
                    await session.execute(update(Payment), [
                        {"id": d.id, "account_version": payees[d.person_ref].account_version} for d in due])
            if not due:
                with contextlib.suppress(TimeoutError):  # new payments wake it; retries fall due by the clock
                    await asyncio.wait_for(due_signal.wait(), timeout=settings.worker_idle_s)
                continue

            held: set[str] = set()
            if earlier:  # re-issues: the bank's own word on every earlier attempt first
                keys = [k for ks in earlier.values() for k in ks]
                checked = dict(zip(keys, await asyncio.gather(*(ask(k) for k in keys)), strict=True))
                await apply_safely(runtime, [a for a in checked.values() if a is not None])
                for payment in due:
                    words = [a.word if (a := checked[k]) else None for k in earlier.get(payment.id, [])]
                    if not all(w in (BankWord.FAILED, BankWord.NOT_RECEIVED) for w in words):
                        held.add(payment.idempotency_key)  # settled (now recorded) or not yet final: not sent
            plain = {p.idempotency_key: orjson.loads(cipher.decrypt(payees[p.person_ref].payee_ciphertext,
                                                                    p.person_ref)) for p in due}
            to_send = [p for p in due if p.idempotency_key not in held]
            async with runtime.db.transaction() as session:
                await mark_sent(session, {p.idempotency_key: fingerprint(runtime, plain[p.idempotency_key]["account"])
                                          for p in to_send})
                await retry_later(session, sorted(held), settings.resend_backoff_s)

            async def send(payment: Payment, plain: dict[str, dict[str, str]] = plain) -> BankResult | None:
                async with semaphore:
                    return await _send_one(gateway, payment, plain[payment.idempotency_key], callback_url)

            answers = await asyncio.gather(*(send(p) for p in to_send))
            _, left = await apply_safely(runtime, [Answer.of(a.idempotency_key, a) for a in answers if a is not None])
            async with runtime.db.transaction() as session:
                await retry_later(session, [p.idempotency_key for p, a in zip(to_send, answers, strict=True)
                                            if a is None], settings.resend_backoff_s)
            for answer in left:  # the resolver asks again (as "accepted": never counted as unconfirmed)
                runtime.extras["hints"].report(BankResult(answer.key, None, BankStatus.ACCEPTED))
        except Exception:
            log.exception("payment sender pass failed; retrying")
            await asyncio.sleep(1)


class Hints:
    """Keys the bank's signed callbacks (or its statement) named, waiting for the resolver to ask the bank.
    What each callback said is kept only to count those the bank's own answer does not confirm."""

    def __init__(self) -> None:
        self.results: dict[str, list[BankResult]] = {}
        self.event = asyncio.Event()

    def report(self, result: BankResult) -> None:
        self.results.setdefault(result.idempotency_key, []).append(result)
        self.event.set()

    def take(self) -> dict[str, list[BankResult]]:
        results, self.results = self.results, {}
        self.event.clear()
        return results


def confirmed(said: BankStatus, answer: BankWord) -> bool:
    """A callback the bank's answer bears out: the same status, or an earlier stage of it (accepted)."""
    return said.value == answer.value or (said is BankStatus.ACCEPTED and answer in (BankWord.SETTLED,
                                                                                    BankWord.FAILED))


async def resolve_open_payments(runtime: Runtime, stopping: asyncio.Event) -> None:
    """Ask the bank, by key, about every attempt it may hold without a final word, and about every key a
    callback named; act only on the bank's own answers. Never re-send what the bank already has."""
    settings = runtime.settings
    gateway: BankGateway = runtime.extras["bank"]
    hints: Hints = runtime.extras["hints"]
    semaphore = asyncio.Semaphore(settings.bank_concurrency)
    cancelling = asyncio.Event()
    runtime.db.on_commit(PAYMENTS_CANCELLING, cancelling.set)

    async def ask(key: str) -> BankResult | None:
        async with semaphore:
            return await gateway.status(key)

    async def recall(key: str) -> BankResult | None:
        async with semaphore:
            return await gateway.recall(key)

    while not stopping.is_set():
        try:
            cancelling.clear()
            reported = hints.take()
            async with runtime.db.transaction() as session:
                polled = await claim_unresolved(session, settings.poll_after_s)
                await release_unsent(session, settings.sending_stale_s)
            keys = sorted(set(reported) | set(polled))
            results = await asyncio.gather(*(ask(k) for k in keys), return_exceptions=True)
            answers = []
            for key, result in zip(keys, results, strict=True):
                if isinstance(result, BaseException):
                    for said in reported.get(key, []):  # the bank could not be asked: ask again next pass
                        hints.report(said)
                    continue
                answer = Answer.of(key, result)
                for said in reported.get(key, []):
                    if not confirmed(said.status, answer.word):
                        CALLBACKS_UNCONFIRMED.inc()
                        log.warning("bank callback not confirmed by the bank's status for the key", extra={
                            "idempotency_key": key, "callback_status": said.status.value,
                            "bank_status": answer.word.value})
                answers.append(answer)
            recalls, left = await apply_safely(runtime, answers)
            for answer in left:
                for said in reported.get(answer.key, []):
                    hints.report(said)
            if recalls:
                recalled = await asyncio.gather(*(recall(k) for k in recalls), return_exceptions=True)
                for key, result in zip(recalls, recalled, strict=True):
                    if isinstance(result, BankResult):  # asked again by key next pass, like any hint
                        hints.report(BankResult(key, result.bank_reference, BankStatus.ACCEPTED))
                    else:
                        log.warning("recall at the bank failed; the attempt stays watched",
                                    extra={"idempotency_key": key})
        except Exception:
            log.exception("payment resolver pass failed; retrying")
        try:  # the next pass: as soon as callbacks or cancellations arrive (a little later, to gather several)
            await asyncio.wait_for(_either(hints.event, cancelling), timeout=1.0)
            await asyncio.sleep(0.05)
        except TimeoutError:
            pass


async def _either(*events: asyncio.Event) -> None:
    waiters = [asyncio.create_task(e.wait()) for e in events]
    try:
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
