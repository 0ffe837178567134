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
from opentelemetry.trace import SpanKind

from disbursement.adapters.bank import BankRejected, BankResult, BankStatus, BankUnavailable, PaymentInstruction
from disbursement.adapters.metrics import CALLBACKS_UNCONFIRMED
from disbursement.dependencies import DisbursementDeps
from disbursement.domain.payment import BankWord, Payment
from disbursement.service_layer.payments import Answer, apply_bank_answers
from disbursement.service_layer.unit_of_work import Units
from shared.telemetry import context_from, tracer

log = logging.getLogger(__name__)
GATHER_S = 0.05


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


async def _send_one(deps: DisbursementDeps, payment: Payment, payee: dict[str, str]) -> BankResult | None:
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
            callback_url=f"{deps.settings.callback_base_url}/v1/bank/callbacks",
        )
        try:
            return await deps.bank.submit(instruction)
        except BankRejected as exc:
            span.set_attribute("payment.rejected", True)
            return BankResult(payment.idempotency_key, None, BankStatus.FAILED, exc.reason)
        except BankUnavailable:
            span.set_attribute("payment.retry_later", True)
            return None


class Sender:
    """Claims due payments in batches and sends them concurrently (bounded), recording every answer.

    A re-issued attempt goes only after the bank confirms every earlier attempt of the payment final and unpaid.
    """

    def __init__(self, units: Units, deps: DisbursementDeps) -> None:
        self.units, self.deps = units, deps
        self.semaphore = asyncio.Semaphore(deps.settings.bank_concurrency)

    async def _ask(self, key: str) -> Answer | None:
        async with self.semaphore:
            try:
                return Answer.of(key, await self.deps.bank.status(key))
            except Exception:  # unreachable or unreadable: the re-issue waits
                return None

    async def _send(self, payment: Payment, payee: dict[str, str]) -> BankResult | None:
        async with self.semaphore:
            return await _send_one(self.deps, payment, payee)

    async def _held(self, due: list[Payment], earlier: dict[UUID, list[str]]) -> set[str]:
        """Keys of re-issued attempts that may not go yet: the bank's own word on every earlier attempt first
        (settled: recorded now; not final: asked again later)."""
        if not earlier:
            return set()
        keys = [k for ks in earlier.values() for k in ks]
        checked = dict(zip(keys, await asyncio.gather(*(self._ask(k) for k in keys)), strict=True))
        await apply_safely(self.units, [a for a in checked.values() if a is not None],
                           quiet_after_s=self.deps.settings.sending_stale_s)
        held = set()
        for payment in due:
            words = [a.word if (a := checked[k]) else None for k in earlier.get(payment.id, [])]
            if not all(w in (BankWord.FAILED, BankWord.NOT_RECEIVED) for w in words):
                held.add(payment.idempotency_key)
        return held

    async def step(self) -> bool:
        settings, now = self.deps.settings, _now()
        async with self.units() as uow:
            claimed = await uow.payments.claim_due(settings.worker_batch, now)
            payees = await uow.payees.accounts({d.person_ref for d in claimed})
            await uow.payments.await_account([d.id for d in claimed if d.person_ref not in payees])
            due = [d for d in claimed if d.person_ref in payees]
            earlier = await uow.payments.earlier_keys(due)
            await uow.payments.set_account_versions({d.id: payees[d.person_ref].version for d in due})
        if not due:
            return False
        held = await self._held(due, earlier)
        cipher = self.deps.payee_cipher
        plain = {p.idempotency_key: orjson.loads(cipher.decrypt(payees[p.person_ref].ciphertext, p.person_ref))
                 for p in due}
        to_send = [p for p in due if p.idempotency_key not in held]
        later = _now() + timedelta(seconds=settings.resend_backoff_s)
        async with self.units() as uow:
            await uow.payments.hand_over({p.idempotency_key: fingerprint(self.deps, plain[p.idempotency_key]["account"])
                                          for p in to_send}, _now())
            await uow.payments.send_later(sorted(held), later, _now())
        answers = await asyncio.gather(*(self._send(p, plain[p.idempotency_key]) for p in to_send))
        _, left = await apply_safely(self.units, [Answer.of(a.idempotency_key, a) for a in answers if a is not None],
                                     quiet_after_s=settings.sending_stale_s)
        async with self.units() as uow:
            await uow.payments.send_later([p.idempotency_key for p, a in zip(to_send, answers, strict=True)
                                           if a is None], _now() + timedelta(seconds=settings.resend_backoff_s),
                                          _now())
        for answer in left:  # the resolver asks again (as "accepted": never counted as unconfirmed)
            self.deps.hints.report(BankResult(answer.key, None, BankStatus.ACCEPTED))
        return True


def confirmed(said: BankStatus, answer: BankWord) -> bool:
    """A callback the bank's answer bears out: the same status, or an earlier stage of it (accepted)."""
    return said.value == answer.value or (said is BankStatus.ACCEPTED and answer in (BankWord.SETTLED,
                                                                                    BankWord.FAILED))


class Resolver:
    """Asks the bank, by key, about every attempt it may hold without a final word, and about every key a
    callback named; acts only on the bank's own answers. Never re-sends what the bank already has."""

    def __init__(self, units: Units, deps: DisbursementDeps) -> None:
        self.units, self.deps = units, deps
        self.semaphore = asyncio.Semaphore(deps.settings.bank_concurrency)

    async def _ask(self, key: str) -> BankResult | None:
        async with self.semaphore:
            return await self.deps.bank.status(key)

    async def _recall(self, key: str) -> BankResult | None:
        async with self.semaphore:
            return await self.deps.bank.recall(key)

    def _answers(self, keys: list[str], results: list[BankResult | None | BaseException],
                 reported: dict[str, list[BankResult]]) -> list[Answer]:
        """The bank's answers, each callback about the key checked against it (and counted when not borne out);
        a key the bank could not be asked about is asked again next pass."""
        answers = []
        for key, result in zip(keys, results, strict=True):
            if isinstance(result, BaseException):
                for said in reported.get(key, []):
                    self.deps.hints.report(said)
                continue
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
        async with self.units() as uow:
            polled = await uow.payments.claim_unresolved(now - timedelta(seconds=settings.poll_after_s), now)
            if await uow.payments.release_unsent(now - timedelta(seconds=settings.sending_stale_s), now):
                uow.wake_sender()
        keys = sorted(set(reported) | set(polled))
        results = await asyncio.gather(*(self._ask(k) for k in keys), return_exceptions=True)
        recalls, left = await apply_safely(self.units, self._answers(keys, results, reported),
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
