"""The background sender: hands due messages to the SMS gateway, outside quiet hours, one person's in order."""

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from opentelemetry.trace import SpanKind
from sqlalchemy import bindparam, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from notification.adapters.metrics import MESSAGE_OUTCOMES, MESSAGES_SENT, MESSAGES_WAITING
from notification.adapters.sms_gateway import Sms, SmsGateway, SmsReceipt, SmsRejected
from notification.adapters.tables import MESSAGES
from notification.domain.schedule import QuietHours
from notification.service_layer.follow import MESSAGES_DUE
from shared.http_client import PartnerUnavailable
from shared.security.crypto import FieldCipher
from shared.service import Runtime
from shared.telemetry import context_from, tracer

log = logging.getLogger(__name__)

# Suppress what an opt-out now covers; put back what a crash left `sending`. Then claim the due messages whose
# person has a phone, each the person's earliest unsent one (so a person's messages arrive in the order things
# happened; a message waits `sms_hold_s` after it is written, for an earlier event still on another topic).
_SUPPRESS = text("""
    UPDATE message m SET status = 'suppressed', updated_at = now()
    FROM recipient c WHERE c.person_ref = m.person_ref AND c.sms_opt_out AND m.status = 'pending'""")
_UNSTICK = text("""
    UPDATE message SET status = 'pending', updated_at = now()
    WHERE status = 'sending' AND updated_at < now() - make_interval(secs => :stale)""")
_CLAIM = text("""
    UPDATE message SET status = 'sending', attempts = attempts + 1, updated_at = now()
    WHERE id IN (
        SELECT m.id FROM message m JOIN recipient c ON c.person_ref = m.person_ref
        WHERE m.status = 'pending' AND m.not_before <= now()
          AND c.phone_ciphertext IS NOT NULL AND NOT c.sms_opt_out
          AND NOT EXISTS (SELECT 1 FROM message e WHERE e.person_ref = m.person_ref
                          AND (e.occurred_at, e.seq) < (m.occurred_at, m.seq) AND e.status IN ('pending', 'sending'))
        ORDER BY m.occurred_at, m.seq LIMIT :limit FOR UPDATE OF m SKIP LOCKED)
    RETURNING id, person_ref, moment, body, traceparent,
        (SELECT phone_ciphertext FROM recipient c WHERE c.person_ref = message.person_ref) AS phone_ciphertext""")
_WAITING = text("SELECT count(*) FROM message WHERE status IN ('pending', 'sending')")


@dataclass(frozen=True)
class Claimed:
    id: UUID
    person_ref: str
    moment: str
    body: str
    traceparent: str | None
    phone_ciphertext: str


@dataclass(frozen=True)
class Outcome:
    message: Claimed
    receipt: SmsReceipt | None = None
    rejected: str | None = None  # the gateway refused it: final


async def claim_due(session: AsyncSession, limit: int, stale_s: float) -> list[Claimed]:
    await session.execute(_SUPPRESS)
    await session.execute(_UNSTICK, {"stale": stale_s})
    rows = (await session.execute(_CLAIM, {"limit": limit})).mappings().all()
    return sorted((Claimed(**row) for row in rows), key=lambda c: str(c.id))


async def record_outcomes(session: AsyncSession, outcomes: Sequence[Outcome], retry_in_s: float) -> None:
    """What the gateway said; a message it could not be reached for goes again later under the same key."""
    now = datetime.now(UTC)
    rows: list[dict[str, Any]] = []
    for o in outcomes:
        if o.receipt is not None:
            status = "delivered" if o.receipt.status == "delivered" else "sent"
            rows.append({"mid": o.message.id, "status": status, "gateway_id": o.receipt.gateway_id, "reason": None,
                         "not_before": now, "sent_at": now})
            MESSAGES_SENT.labels(o.message.moment).inc()
        elif o.rejected is not None:
            rows.append({"mid": o.message.id, "status": "failed", "gateway_id": None, "reason": o.rejected,
                         "not_before": now, "sent_at": None})
            MESSAGE_OUTCOMES.labels("failed").inc()
        else:
            rows.append({"mid": o.message.id, "status": "pending", "gateway_id": None, "reason": None,
                         "not_before": now + timedelta(seconds=retry_in_s), "sent_at": None})
    if rows:
        # Only rows still `sending`: a delivery report may have come back before the gateway's answer did.
        await session.execute(update(MESSAGES).where(MESSAGES.c.id == bindparam("mid"),
                                                     MESSAGES.c.status == "sending").values(
            status=bindparam("status"), gateway_id=bindparam("gateway_id"), failure_reason=bindparam("reason"),
            not_before=bindparam("not_before"), sent_at=bindparam("sent_at"), updated_at=now), rows)


async def send_due_messages(runtime: Runtime, stopping: asyncio.Event) -> None:
    """Send until stopped. Woken by every commit that wrote messages; otherwise looks every `worker_idle_s`."""
    settings = runtime.settings
    gateway: SmsGateway = runtime.extras["sms"]
    cipher: FieldCipher = runtime.extras["contact_cipher"]
    quiet: QuietHours = runtime.extras["quiet_hours"]
    due = asyncio.Event()
    runtime.db.on_commit(MESSAGES_DUE, due.set)
    semaphore = asyncio.Semaphore(settings.sms_concurrency)
    callback_url = f"{settings.sms_callback_base_url}/v1/sms/delivery-reports"

    async def send(message: Claimed) -> Outcome:
        phone = cipher.decrypt(message.phone_ciphertext, message.person_ref)
        sms = Sms(str(message.id), phone, message.body, callback_url)
        with tracer.start_as_current_span("sms send", context=context_from(message.traceparent),
                                          kind=SpanKind.CLIENT) as span:
            span.set_attribute("message.id", str(message.id))
            span.set_attribute("message.moment", message.moment)
            span.set_attribute("person_ref", message.person_ref)
            async with semaphore:
                try:
                    return Outcome(message, receipt=await gateway.send(sms))
                except SmsRejected as exc:
                    span.set_attribute("sms.rejected", exc.reason)
                    return Outcome(message, rejected=exc.reason)
                except PartnerUnavailable:
                    span.set_attribute("sms.retry_later", True)
                    return Outcome(message)

    while not stopping.is_set():
        try:
            now = datetime.now(UTC)
            if quiet.is_quiet(now):  # nothing goes out at night; what is written meanwhile waits
                wait_s = min((quiet.next_allowed(now) - now).total_seconds(), 60.0)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stopping.wait(), timeout=max(wait_s, 0.1))
                continue
            due.clear()
            async with runtime.db.transaction() as session:
                claimed = await claim_due(session, settings.worker_batch, settings.sms_sending_stale_s)
                MESSAGES_WAITING.set((await session.execute(_WAITING)).scalar_one())
            if not claimed:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(due.wait(), timeout=settings.worker_idle_s)
                continue
            outcomes = await asyncio.gather(*(send(m) for m in claimed))
            async with runtime.db.transaction() as session:
                await record_outcomes(session, outcomes, settings.sms_resend_backoff_s)
        except Exception:
            log.exception("sms sender pass failed; retrying")
            await asyncio.sleep(1)
