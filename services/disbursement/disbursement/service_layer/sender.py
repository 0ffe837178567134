"""The background workers: send due payments, and resolve the ones the bank still owes an answer on."""

import asyncio
import contextlib
import logging
from datetime import UTC, datetime, timedelta

import orjson
from opentelemetry.trace import SpanKind
from sqlalchemy import select, update

from disbursement.adapters.bank import (
    BankGateway,
    BankRejected,
    BankResult,
    BankStatus,
    BankUnavailable,
    PaymentInstruction,
)
from disbursement.adapters.tables import Payee, Payment
from disbursement.domain.payment import PaymentStatus
from disbursement.service_layer.payments import PAYMENTS_DUE, apply_bank_results, claim_due, retry_later, unresolved
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


async def send_due_payments(runtime: Runtime, stopping: asyncio.Event) -> None:
    """Claim due payments in batches and send them concurrently (bounded), recording every answer."""
    settings = runtime.settings
    gateway: BankGateway = runtime.extras["bank"]
    cipher: FieldCipher = runtime.extras["payee_cipher"]
    semaphore = asyncio.Semaphore(settings.bank_concurrency)
    callback_url = f"{settings.callback_base_url}/v1/bank/callbacks"
    due_signal = asyncio.Event()
    runtime.db.on_commit(PAYMENTS_DUE, due_signal.set)
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
                if due:
                    await session.execute(update(Payment), [
                        {"id": d.id, "account_version": payees[d.person_ref].account_version} for d in due])
            if not due:
                with contextlib.suppress(TimeoutError):  # new payments wake it; retries fall due by the clock
                    await asyncio.wait_for(due_signal.wait(), timeout=settings.worker_idle_s)
                continue

            async def send(payment: Payment, payees: dict[str, Payee] = payees) -> BankResult | None:
                payee = orjson.loads(cipher.decrypt(payees[payment.person_ref].payee_ciphertext, payment.person_ref))
                async with semaphore:
                    return await _send_one(gateway, payment, payee, callback_url)

            answers = await asyncio.gather(*(send(p) for p in due))
            async with runtime.db.transaction() as session:
                await apply_bank_results(session, settings, [a for a in answers if a is not None])
                await retry_later(session, [p.idempotency_key for p, a in zip(due, answers, strict=True) if a is None],
                                  settings.resend_backoff_s)
        except Exception:
            log.exception("payment sender pass failed; retrying")
            await asyncio.sleep(1)


class Hints:
    """What the bank's signed callbacks said, waiting for the resolver's next pass (one transaction for all)."""

    def __init__(self) -> None:
        self.results: dict[str, BankResult] = {}
        self.event = asyncio.Event()

    def report(self, result: BankResult) -> None:
        self.results[result.idempotency_key] = result
        self.event.set()

    def take(self) -> list[BankResult]:
        results, self.results = list(self.results.values()), {}
        self.event.clear()
        return results


async def resolve_open_payments(runtime: Runtime, stopping: asyncio.Event) -> None:
    """Ask the bank, by key, about attempts with no final word; never re-send what the bank already has."""
    settings = runtime.settings
    gateway: BankGateway = runtime.extras["bank"]
    hints: Hints = runtime.extras["hints"]
    semaphore = asyncio.Semaphore(settings.bank_concurrency)

    async def ask(key: str) -> BankResult | None:
        async with semaphore:
            return await gateway.status(key)

    while not stopping.is_set():
        try:
            reported = hints.take()
            async with runtime.db.transaction() as session:
                await apply_bank_results(session, settings, reported)
                accepted, stale = await unresolved(session, settings.poll_after_s, settings.sending_stale_s)
            keys = sorted(set(accepted) | set(stale))
            asked_at = datetime.now(UTC) - timedelta(seconds=settings.sending_stale_s)
            answers = await asyncio.gather(*(ask(k) for k in keys), return_exceptions=True)
            known = [a for a in answers if isinstance(a, BankResult)]
            unknown = [k for k, a in zip(keys, answers, strict=True) if a is None and k in stale]
            if known or unknown:
                async with runtime.db.transaction() as session:
                    await apply_bank_results(session, settings, known)
                    # Left `sending` by a crash and unknown to the bank: send again, same key.
                    await retry_later(session, unknown, 0, stale_before=asked_at)
        except Exception:
            log.exception("payment resolver pass failed; retrying")
        try:  # the next pass: as soon as callbacks arrive (a little later, to gather several), or in a second
            await asyncio.wait_for(hints.event.wait(), timeout=1.0)
            await asyncio.sleep(0.05)
        except TimeoutError:
            pass
