"""The background sender: hands due messages to the SMS gateway, outside quiet hours, one person's in order."""

import asyncio
import time
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime

from opentelemetry import trace
from opentelemetry.trace import SpanKind

from notification.adapters.metrics import MESSAGE_OUTCOMES, MESSAGES_SENT, MESSAGES_WAITING
from notification.adapters.repositories import MESSAGES_DUE
from notification.adapters.sms_gateway import Sms, SmsRejected
from notification.dependencies import NotificationDeps
from notification.domain.messages import Claimed, Outcome
from notification.service_layer.unit_of_work import NotificationUnitOfWork
from shared.http_client import PartnerUnavailable
from shared.service import Runtime
from shared.telemetry import entry_spans, parse_traceparent
from shared.unit_of_work import unit_of_work
from shared.worker import Wakeup, run_worker

OpenUnitOfWork = Callable[[], AbstractAsyncContextManager[NotificationUnitOfWork]]
GAUGE_EVERY_S = 5.0
"""How often a pass also counts the waiting messages for the gauge: a count over the backlog in every pass
(woken by every commit that wrote messages) is work that grows with the backlog, not with what the pass sends."""
SETTLE_EVERY_S = 60.0
"""How often a pass also brings every unsent message in line with its person's contact (`settle_all`): the
consumer does it for the persons whose contact it stores, so this only catches a message written while another
instance stored that person's contact, and it scans every held message: not every pass."""


class Sender:
    """One pass hands the due messages to the gateway, at most `sms_concurrency` at once, and records what it
    said. The phone number is decrypted only here, for the request."""

    def __init__(self, deps: NotificationDeps, open_uow: OpenUnitOfWork) -> None:
        self.deps, self.open_uow = deps, open_uow
        self.semaphore = asyncio.Semaphore(deps.settings.sms_concurrency)
        self.callback_url = f"{deps.settings.sms_callback_base_url}/v1/sms/delivery-reports"
        self._counted_at = self._settled_at = float("-inf")

    async def send_due(self) -> bool:
        """One pass; True when it sent something (there may be more at once), False when idle or quiet."""
        settings = self.deps.settings
        if self.deps.wording.quiet.is_quiet(datetime.now(UTC)):
            return False  # nothing goes out at night; what is written meanwhile waits
        async with self.open_uow() as uow:
            if (now := time.monotonic()) - self._settled_at >= SETTLE_EVERY_S:
                await uow.messages.settle_all()
                self._settled_at = now
            claimed = await uow.messages.claim_due(settings.worker_batch, settings.sms_sending_stale_s)
            if now - self._counted_at >= GAUGE_EVERY_S:
                MESSAGES_WAITING.set(await uow.messages.waiting())
                self._counted_at = now
        if not claimed:
            return False
        outcomes = await asyncio.gather(*(self._send(m) for m in claimed))
        async with self.open_uow() as uow:
            await uow.messages.record(outcomes, datetime.now(UTC))
        for o in outcomes:
            if o.status in ("sent", "delivered"):
                MESSAGES_SENT.labels(o.message.moment).inc()
            elif o.status == "failed":
                MESSAGE_OUTCOMES.labels("failed").inc()
        return True

    async def _send(self, message: Claimed) -> Outcome:
        phone = self.deps.contact_cipher.decrypt(message.phone_ciphertext, message.person_ref)
        sms = Sms(str(message.id), phone, message.body, self.callback_url)
        with trace.use_span(entry_spans.start("sms send", parse_traceparent(message.traceparent),
                                              kind=SpanKind.CLIENT), end_on_exit=True) as span:
            span.set_attribute("message.id", str(message.id))
            span.set_attribute("message.moment", message.moment)
            span.set_attribute("person_ref", message.person_ref)
            async with self.semaphore:
                try:
                    receipt = await self.deps.sms.send(sms)
                except SmsRejected as exc:
                    span.set_attribute("sms.rejected", exc.reason)
                    return Outcome.rejected(message, exc.reason, datetime.now(UTC))
                except PartnerUnavailable:
                    span.set_attribute("sms.retry_later", True)
                    return Outcome.unreachable(message, datetime.now(UTC), self.deps.settings.sms_resend_backoff_s)
            return Outcome.accepted(message, receipt.gateway_id, receipt.status, datetime.now(UTC))


async def send_due_messages(runtime: Runtime[NotificationDeps], stopping: asyncio.Event) -> None:
    """Send until stopped, on the one worker loop: woken by every commit that wrote messages, otherwise looking
    every `worker_idle_s`."""
    wakeup = Wakeup()
    runtime.db.on_commit(MESSAGES_DUE, wakeup.set)
    sender = Sender(runtime.deps, lambda: unit_of_work(runtime.db, NotificationUnitOfWork))
    await run_worker("sms sender", sender.send_due, stopping, idle_s=runtime.deps.settings.worker_idle_s,
                     wakeup=wakeup)
