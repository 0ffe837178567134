"""The two bank workers' passes: send due payments, and resolve the attempts the bank still owes an answer on.
Each pass runs on `shared.worker.run_worker` (bootstrap.py); it returns True when there may be more to do now."""

import asyncio
import hashlib
import hmac
import logging
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from uuid import UUID

import orjson
from opentelemetry import trace
from opentelemetry.trace import Link, SpanKind, Status, StatusCode

from disbursement.adapters.bank import BankResult, BankStatus, BatchAnswer, PaymentInstruction
from disbursement.adapters.metrics import CALLBACKS_UNCONFIRMED
from disbursement.adapters.repositories import Due
from disbursement.dependencies import DisbursementDeps
from disbursement.domain.payment import BankWord, Payment
from disbursement.service_layer.payments import Answer, apply_bank_answers
from disbursement.service_layer.unit_of_work import Units
from shared.telemetry import end_spans_of_a_failed_call, entry_spans, parse_traceparent, tracer

log = logging.getLogger(__name__)
GATHER_S = 0.05
POLL_EVERY_S = 1.0


def _now() -> datetime:
    return datetime.now(UTC)


def fingerprint(deps: DisbursementDeps, account: str) -> str:
    """The account an attempt went to, comparable with the bank's statement, not reversible to the number."""
    pepper = deps.settings.person_ref_pepper.get_secret_value().encode()
    return hmac.new(pepper, f"account:{account}".encode(), hashlib.sha256).hexdigest()


async def apply_safely(units: Units, answers: Sequence[Answer], *, quiet_after_s: float
                       ) -> tuple[list[str], list[Answer]]:
    """Apply answers in one transaction; if that fails, each answer in its own, so one that cannot be applied
    never holds up the others. Returns (keys to recall, answers not applied)."""
    try:
        async with units() as uow:
            return await apply_bank_answers(uow, answers, quiet_after_s=quiet_after_s), []
    except Exception:
        if len(answers) <= 1:
            log.exception("a bank answer could not be applied; asked again later")
            return [], list(answers)
    recalls, left = [], []
    for answer in answers:
        try:
            async with units() as uow:
                recalls += await apply_bank_answers(uow, [answer], quiet_after_s=quiet_after_s)
        except Exception:
            log.exception("a bank answer could not be applied; asked again later",
                          extra={"idempotency_key": answer.key})
            left.append(answer)
    return recalls, left


class Sender:
    """Claims due payments in batches and hands each batch to the bank in one call, recording every answer.

    A re-issued attempt goes only after the bank confirms every earlier attempt of the payment final and unpaid.
    A pass ends once its batch is handed over: the bank call and the recording of its answers go on in the
    background, at most `sender_passes` at once, so payments falling due meanwhile go in the next pass instead of
    waiting for those answers. Each pass claims its own payments (as `sending`, committed before any bank call),
    so no two calls ever carry the same payment.
    """

    def __init__(self, units: Units, deps: DisbursementDeps) -> None:
        self.units, self.deps = units, deps
        self.callback_url = f"{deps.settings.callback_base_url}/v1/bank/callbacks"
        self._slots = asyncio.Semaphore(deps.settings.sender_passes)
        self._in_flight: set[asyncio.Task[None]] = set()

    async def _held(self, due: list[Payment], earlier: dict[UUID, list[str]]) -> set[str]:
        """Keys of re-issued attempts that may not go yet: the bank's own word on every earlier attempt first
        (asked in one call; settled: recorded now; not final, or not answered: asked again later)."""
        if not earlier:
            return set()
        keys = [k for ks in earlier.values() for k in ks]
        try:
            checked = {k: Answer.of(k, r) for k, r in (await self.deps.bank.statuses(keys)).items()}
        except Exception:  # unreachable or unreadable: the re-issues wait
            log.warning("the bank could not be asked about earlier attempts; the re-issues wait", exc_info=True)
            checked = {}
        await apply_safely(self.units, list(checked.values()), quiet_after_s=self.deps.settings.sending_stale_s)
        held = set()
        for payment in due:
            words = [a.word if (a := checked.get(k)) else None for k in earlier.get(payment.id, [])]
            if not all(w in (BankWord.FAILED, BankWord.NOT_RECEIVED) for w in words):
                held.add(payment.idempotency_key)
        return held

    async def _send(self, payments: list[Payment], instructions: list[PaymentInstruction]) -> BatchAnswer:
        """The batch in one bank call. Each payment keeps its own client span in its settlement's trace; the
        call itself runs under the first sampled one, linked to the others."""
        spans = [entry_spans.start("bank transfer", parse_traceparent(p.traceparent), kind=SpanKind.CLIENT)
                 for p in payments]
        sampled = [span for span in spans if span.get_span_context().trace_flags.sampled]
        for p, span in zip(payments, spans, strict=True):
            if span.is_recording():  # the attributes only for spans that are kept
                span.set_attributes({"payment.id": str(p.id), "case.id": str(p.case_id),
                                     "settlement.id": str(p.settlement_id), "person_ref": p.person_ref,
                                     "payment.amount": f"{p.amount:.2f}", "payment.attempt": p.attempt,
                                     "bank.batch_size": len(payments)})
        parent = trace.set_span_in_context(sampled[0] if sampled else spans[0])
        try:
            with tracer.start_as_current_span("bank batch", context=parent, attributes={"bank.batch_size": len(
                    payments)}, links=[Link(span.get_span_context()) for span in sampled[1:]]):
                answer = await self.deps.bank.submit_batch(instructions)
        except BaseException as exc:
            end_spans_of_a_failed_call(spans, exc, "bank call failed")
            raise
        for payment, span in zip(payments, spans, strict=True):
            # A refused transfer and one the bank could not take are failed transfer spans: kept even when the
            # settlement is unsampled (ADR 0029), within the per-second cap.
            if payment.idempotency_key in answer.refused:
                span.set_attribute("payment.rejected", True)
                span.set_status(Status(StatusCode.ERROR, "refused by the bank"))
            elif payment.idempotency_key in answer.retry:
                span.set_attribute("payment.retry_later", True)
                span.set_status(Status(StatusCode.ERROR, "bank unavailable, sent again later"))
            span.end()
        return answer

    async def step(self) -> bool:
        """Claim due payments and hand them to the bank (in the background); True when it handed some over."""
        await self._slots.acquire()  # no claim while every bank call allowed is still out: what is due waits unclaimed
        try:
            batch = await self._claim()
        except BaseException:
            self._slots.release()
            raise
        if batch is None:
            self._slots.release()
            return False
        if not batch[0]:
            self._slots.release()
            return True
        delivery = asyncio.create_task(self._deliver(*batch))
        self._in_flight.add(delivery)
        delivery.add_done_callback(self._delivered)
        return True

    def _delivered(self, delivery: "asyncio.Task[None]") -> None:
        self._in_flight.discard(delivery)
        self._slots.release()
        if not delivery.cancelled() and (exc := delivery.exception()) is not None:
            # its attempts are `unknown`, handed over: the resolver asks the bank about them by key
            log.error("a bank call or the recording of its answers failed (%s); the resolver asks the bank",
                      type(exc).__name__, exc_info=exc)

    async def drain(self) -> None:
        """Wait until every bank call under way has been answered and its answers recorded (a graceful stop)."""
        while self._in_flight:
            await asyncio.gather(*self._in_flight, return_exceptions=True)

    async def _claim(self) -> tuple[list[Payment], list[PaymentInstruction]] | None:
        """Due payments claimed and handed over (recorded as possibly at the bank), with their instructions;
        None when nothing was due.

        A batch of first attempts is claimed and handed over in one transaction: one commit, not two, before
        its bank call. A batch with a re-issue is handed over in a second one, after the bank has been asked about
        the earlier attempts (never while the claim's row locks are held)."""
        settings = self.deps.settings
        async with self.units() as uow:
            claimed = await uow.payments.claim_due(settings.worker_batch, _now())
            await uow.payments.await_account([d.payment.id for d in claimed if d.ciphertext is None])
            due = [d for d in claimed if d.ciphertext is not None]
            earlier = await uow.payments.earlier_keys([d.payment for d in due])
            if due and not earlier:
                to_send, instructions, handed = self._instructions(due, set())
                await uow.payments.hand_over(handed, _now())
                return to_send, instructions
        if not due:
            return None
        held = await self._held([d.payment for d in due], earlier)
        to_send, instructions, handed = self._instructions(due, held)
        later = _now() + timedelta(seconds=settings.resend_backoff_s)
        async with self.units() as uow:
            await uow.payments.hand_over(handed, _now())
            await uow.payments.send_later(sorted(held), later, _now())
        return to_send, instructions

    def _instructions(self, due: list[Due], held: set[str]
                      ) -> tuple[list[Payment], list[PaymentInstruction], dict[str, tuple[str, int | None]]]:
        """The payments that go now (not `held`), their instructions, and what each hand-over records."""
        cipher = self.deps.payee_cipher
        to_send, instructions, handed = [], [], {}
        for d in due:
            payment = d.payment
            if payment.idempotency_key in held:
                continue
            assert d.ciphertext is not None
            payee = orjson.loads(cipher.decrypt(d.ciphertext, payment.person_ref))
            to_send.append(payment)
            instructions.append(PaymentInstruction(
                idempotency_key=payment.idempotency_key, amount=payment.amount, creditor_account=payee["account"],
                creditor_name=payee["name"], remittance_info=f"medical assistance case {payment.case_id}",
                callback_url=self.callback_url))
            handed[payment.idempotency_key] = (fingerprint(self.deps, payee["account"]), payment.account_version)
        return to_send, instructions, handed

    async def _deliver(self, to_send: list[Payment], instructions: list[PaymentInstruction]) -> None:
        """The bank call for a handed-over batch, and its answers recorded."""
        settings = self.deps.settings
        answer = await self._send(to_send, instructions)
        answers = [Answer.of(k, r) for k, r in answer.results.items()]
        answers += [Answer.of(k, BankResult(k, None, BankStatus.FAILED, why)) for k, why in answer.refused.items()]
        _, left = await apply_safely(self.units, answers, quiet_after_s=settings.sending_stale_s)
        if answer.retry:  # no word from the bank within the adapter's retries: the same keys go again later
            async with self.units() as uow:
                await uow.payments.send_later(sorted(answer.retry), _now() + timedelta(
                    seconds=settings.resend_backoff_s), _now())
        for left_over in left:  # the resolver asks again (as "accepted": never counted as unconfirmed)
            self.deps.hints.report(BankResult(left_over.key, None, BankStatus.ACCEPTED))


def confirmed(said: BankStatus, answer: BankWord) -> bool:
    """A callback the bank's answer bears out: the same status, or an earlier stage of it (accepted)."""
    return said.value == answer.value or (said is BankStatus.ACCEPTED and answer in (BankWord.SETTLED,
                                                                                    BankWord.FAILED))


class Resolver:
    """Asks the bank, by key, about every attempt it may hold without a final word, and about every key a
    callback named; acts only on the bank's own answers. Never re-sends what the bank already has.

    One status call per pass for every key. The unresolved attempts are polled for when the clock wakes the
    resolver (or a cancellation does), at most every `POLL_EVERY_S` while callbacks keep it busy: a callback's
    wake-up costs the keys it named, not a scan of the payments."""

    def __init__(self, units: Units, deps: DisbursementDeps) -> None:
        self.units, self.deps = units, deps
        self.semaphore = asyncio.Semaphore(deps.settings.bank_concurrency)
        self.polled_at = -POLL_EVERY_S

    async def _recall(self, key: str) -> BankResult | None:
        async with self.semaphore:
            return await self.deps.bank.recall(key)

    def _answers(self, results: dict[str, BankResult | None], reported: dict[str, list[BankResult]]
                 ) -> list[Answer]:
        """The bank's answers, each callback about the key checked against it (and counted when not borne out)."""
        answers = []
        for key, result in results.items():
            answer = Answer.of(key, result)
            for said in reported.get(key, []):
                if not confirmed(said.status, answer.word):
                    CALLBACKS_UNCONFIRMED.inc()
                    log.warning("bank callback not confirmed by the bank's status for the key", extra={
                        "idempotency_key": key, "callback_status": said.status.value, "bank_status": answer.word.value})
            answers.append(answer)
        return answers

    async def step(self) -> bool:
        await asyncio.sleep(GATHER_S)  # a wake-up by one callback: let the ones arriving with it join this pass
        settings, hints, now = self.deps.settings, self.deps.hints, _now()
        reported = hints.take()
        polled: list[str] = []
        clock = asyncio.get_running_loop().time()
        if not reported or clock - self.polled_at >= POLL_EVERY_S:
            self.polled_at = clock
            async with self.units() as uow:
                polled = await uow.payments.claim_unresolved(now - timedelta(seconds=settings.poll_after_s), now)
                if await uow.payments.release_unsent(now - timedelta(seconds=settings.sending_stale_s), now):
                    uow.wake_sender()
        keys = sorted(set(reported) | set(polled))
        if not keys:
            return False
        try:
            results = await self.deps.bank.statuses(keys)
        except Exception:  # asked again next pass, like any hint
            log.warning("the bank could not be asked about %d keys; asked again next pass", len(keys),
                        exc_info=True)
            for said in (s for key in reported for s in reported[key]):
                hints.report(said)
            return False
        recalls, left = await apply_safely(self.units, self._answers(results, reported),
                                           quiet_after_s=settings.sending_stale_s)
        for answer in left:
            for said in reported.get(answer.key, []):
                hints.report(said)
        if recalls:
            recalled = await asyncio.gather(*(self._recall(k) for k in recalls), return_exceptions=True)
            for key, result in zip(recalls, recalled, strict=True):
                if isinstance(result, BankResult):  # asked again by key next pass, like any hint
                    hints.report(BankResult(key, result.bank_reference, BankStatus.ACCEPTED))
                else:
                    log.warning("recall at the bank failed; the attempt stays watched", extra={"idempotency_key": key})
        return False
