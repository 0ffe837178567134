"""The background sender: hands due messages to the SMS gateway, outside quiet hours, one person's in order."""

import asyncio
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime

from opentelemetry import trace
from opentelemetry.trace import Link, SpanKind
from opentelemetry.util.types import AttributeValue

from notification.adapters.metrics import MESSAGE_OUTCOMES, MESSAGES_SENT, MESSAGES_WAITING
from notification.adapters.repositories import MESSAGES_DUE
from notification.adapters.sms_gateway import Sms
from notification.dependencies import NotificationDeps
from notification.domain.messages import Claimed, Outcome
from notification.service_layer.unit_of_work import NotificationUnitOfWork
from shared.service import Runtime
from shared.telemetry import (
    end_spans_of_a_failed_call,
    entry_spans,
    parse_traceparent,
    set_attributes_if_kept,
    tracer,
)
from shared.unit_of_work import unit_of_work
from shared.worker import Wakeup, run_worker

OpenUnitOfWork = Callable[[], AbstractAsyncContextManager[NotificationUnitOfWork]]
GAUGE_EVERY_S = 5.0
"""How often a pass also counts the waiting messages for the gauge: a count over the backlog in every pass
(woken by every commit that wrote messages) is work that grows with the backlog, not with what the pass sends."""
UNSTICK_EVERY_S = 5.0
"""How often a pass first puts back what a crash left `sending` (for longer than `sms_sending_stale_s`, 60 s): a
statement in every pass (woken by every commit that made messages pending) that finds nothing but after a crash;
such a message waits at most this much longer."""
SETTLE_EVERY_S = 60.0
"""How often a pass also brings every unsent message in line with its person's contact (`settle_all`): the
consumer does it for the persons whose contact it stores, so this only catches a message written while another
instance stored that person's contact, and it scans every held message: not every pass."""


class Sender:
    """One pass hands the due messages to the gateway, `sms_batch_max` a request and at most `sms_concurrency`
    requests at once, and records what it said. The phone number is decrypted only here, for the request."""

    def __init__(self, deps: NotificationDeps, open_uow: OpenUnitOfWork) -> None:
        self.deps, self.open_uow = deps, open_uow
        self.semaphore = asyncio.Semaphore(deps.settings.sms_concurrency)
        self.callback_url = f"{deps.settings.sms_callback_base_url}/v1/sms/delivery-reports"
        self._counted_at = self._settled_at = self._unstuck_at = self._passed_at = float("-inf")
        self._full = False

    async def send_due(self) -> bool:
        """One pass; True when it sent something (there may be more at once), False when idle or quiet."""
        settings = self.deps.settings
        if self.deps.wording.quiet.is_quiet(datetime.now(UTC)):
            return False  # nothing goes out at night; what is written meanwhile waits
        if not self._full and (wait := self._passed_at + settings.sms_pass_min_s - time.monotonic()) > 0:
            await asyncio.sleep(wait)  # woken again at once by a commit: let what falls due meanwhile come along
        self._passed_at = time.monotonic()
        async with self.open_uow() as uow:
            if (now := time.monotonic()) - self._settled_at >= SETTLE_EVERY_S:
                await uow.messages.settle_all()
                self._settled_at = now
            unstick = now - self._unstuck_at >= UNSTICK_EVERY_S
            claimed = await uow.messages.claim_due(settings.worker_batch, settings.sms_sending_stale_s,
                                                   unstick=unstick)
            if unstick:
                self._unstuck_at = now
            if now - self._counted_at >= GAUGE_EVERY_S:
                MESSAGES_WAITING.set(await uow.messages.waiting())
                self._counted_at = now
        self._full = len(claimed) >= settings.worker_batch
        if not claimed:
            return False
        size = max(1, settings.sms_batch_max)
        batches = await asyncio.gather(*(self._send(claimed[i:i + size]) for i in range(0, len(claimed), size)))
        outcomes = [o for batch in batches for o in batch]
        async with self.open_uow() as uow:
            await uow.messages.record(outcomes, datetime.now(UTC))
        for o in outcomes:
            if o.status in ("sent", "delivered"):
                MESSAGES_SENT.labels(o.message.moment).inc()
            elif o.status == "failed":
                MESSAGE_OUTCOMES.labels("failed").inc()
        return True

    async def _send(self, batch: Sequence[Claimed]) -> list[Outcome]:
        """One request to the gateway for a batch of messages (ADR 0051), each message's key its id. Each keeps
        its own `sms send` span in its trace; the request runs under an `sms batch` span, a child of the first
        sampled message's, linked to the other sampled ones (no span at all when none is sampled)."""
        decrypt, phones = self.deps.contact_cipher.decrypt, dict[tuple[str, str], str]()
        for m in batch:  # a person's messages of one pass share their number: decrypted once
            if (m.phone_ciphertext, m.person_ref) not in phones:
                phones[m.phone_ciphertext, m.person_ref] = decrypt(m.phone_ciphertext, m.person_ref)
        messages = [Sms(str(m.id), phones[m.phone_ciphertext, m.person_ref], m.body) for m in batch]
        spans = [entry_spans.start("sms send", parse_traceparent(m.traceparent), kind=SpanKind.CLIENT)
                 for m in batch]
        for m, span in zip(batch, spans, strict=True):
            set_attributes_if_kept(span, _described, (m, len(batch)))
        sampled = [span for span in spans if span.get_span_context().trace_flags.sampled]
        try:
            async with self.semaphore:
                if sampled:
                    with tracer.start_as_current_span(
                            "sms batch", context=trace.set_span_in_context(sampled[0]),
                            attributes={"sms.batch_size": len(batch)},
                            links=[Link(span.get_span_context()) for span in sampled[1:]]):
                        answer = await self.deps.sms.send_batch(messages, self.callback_url, sampled=True)
                else:
                    answer = await self.deps.sms.send_batch(messages, self.callback_url)
        except BaseException as exc:
            end_spans_of_a_failed_call(spans, exc, "sms batch failed")
            raise
        now = datetime.now(UTC)
        outcomes = []
        for m, span in zip(batch, spans, strict=True):
            key = str(m.id)
            if (receipt := answer.receipts.get(key)) is not None:
                outcomes.append(Outcome.accepted(m, receipt.gateway_id, receipt.status, now))
            elif key in answer.rejected:
                span.set_attribute("sms.rejected", answer.rejected[key])
                outcomes.append(Outcome.rejected(m, answer.rejected[key], now))
            else:  # unknown after the retries: goes again later, same key (the gateway sends it at most once)
                span.set_attribute("sms.retry_later", True)
                outcomes.append(Outcome.unreachable(m, now, self.deps.settings.sms_resend_backoff_s))
            span.end()
        return outcomes


def _described(subject: tuple[Claimed, int]) -> dict[str, AttributeValue]:
    message, size = subject
    return {"message.id": str(message.id), "message.moment": message.moment, "person_ref": message.person_ref,
            "sms.batch_size": size}


async def send_due_messages(runtime: Runtime[NotificationDeps], stopping: asyncio.Event) -> None:
    """Send until stopped, on the one worker loop: woken by every commit that wrote messages, otherwise looking
    every `worker_idle_s`."""
    wakeup = Wakeup()
    runtime.db.on_commit(MESSAGES_DUE, wakeup.set)
    sender = Sender(runtime.deps, lambda: unit_of_work(runtime.db, NotificationUnitOfWork))
    await run_worker("sms sender", sender.send_due, stopping, idle_s=runtime.deps.settings.worker_idle_s,
                     wakeup=wakeup)
