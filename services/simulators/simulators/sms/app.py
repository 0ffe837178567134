"""The SMS gateway simulator's HTTP API. One message per idempotency key, ever; nothing it holds is logged."""

import asyncio
import hashlib
import hmac
import json
import random
import time
import uuid
from collections import Counter
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from fastapi import FastAPI, Header
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from simulators.sms.settings import SmsFaults, SmsSettings


class MessageIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    to: str = Field(pattern=r"^1[3-9]\d{9}$")
    text: str = Field(min_length=1, max_length=500)
    callback_url: str | None = None


class BatchItemIn(BaseModel):
    """One message of a batch: its own idempotency key; what it says is validated on its own (`MessageIn`), so a
    message the gateway cannot take is refused alone."""

    model_config = ConfigDict(extra="allow")
    idempotency_key: str = Field(min_length=1, max_length=64)


class MessageBatchIn(BaseModel):
    """Many messages in one request, each with its own key; the callback URL is the batch's (one sender's)."""

    model_config = ConfigDict(extra="forbid")
    messages: list[BatchItemIn] = Field(min_length=1, max_length=1000)
    callback_url: str | None = None


@dataclass
class Sent:
    key: str
    fingerprint: str
    to: str
    text: str
    callback_url: str | None
    message_id: str = field(default_factory=lambda: f"SM{uuid.uuid4().hex[:16].upper()}")
    status: str = "accepted"
    received_at: float = field(default_factory=time.time)

    def public(self) -> dict[str, Any]:
        return {"idempotency_key": self.key, "message_id": self.message_id, "status": self.status}


def create_app(settings: SmsSettings | None = None) -> FastAPI:
    settings = settings or SmsSettings()
    app = FastAPI(title="SMS gateway simulator")
    state: dict[str, Any] = {"faults": settings.faults()}
    messages: dict[str, Sent] = {}
    stats: Counter[str] = Counter()
    rng = random.Random(settings.seed)
    tasks: set[asyncio.Task[None]] = set()
    sessions: list[aiohttp.ClientSession] = []

    def faults() -> SmsFaults:
        current: SmsFaults = state["faults"]
        return current

    def chance(rate: float) -> bool:
        return rate > 0 and rng.random() < rate

    # Delivery reports waiting to be handed over, per callback URL: like a real gateway's receipts, they go in
    # batches, {"reports": [...]}, one signed callback per batch (at most `report_batch_max` reports, sent
    # `report_linger_ms` after the first of them was ready).
    waiting: dict[str, list[dict[str, Any]]] = {}

    async def post_reports(url: str, reports: list[dict[str, Any]]) -> None:
        body = json.dumps({"reports": reports}).encode()
        signature = hmac.new(settings.callback_secret.encode(), body, hashlib.sha256).hexdigest()
        if not sessions:
            sessions.append(aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)))
        for _ in range(3):  # a batch that cannot be handed over is tried again a little later
            try:
                async with sessions[0].post(url, data=body, headers={
                        "Content-Type": "application/json", "X-Sms-Signature": signature}) as response:
                    await response.read()
                    if response.status < 500:
                        stats["reports_sent"] += len(reports)  # reports, however batched
                        stats["report_batches_sent"] += 1
                        return
            except (TimeoutError, aiohttp.ClientError):
                pass
            await asyncio.sleep(1)
        stats["reports_failed"] += len(reports)

    def spawn(work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    async def flush_later(url: str) -> None:
        await asyncio.sleep(settings.report_linger_ms / 1000)
        if reports := waiting.pop(url, None):
            await post_reports(url, reports)

    def report(url: str, item: dict[str, Any]) -> None:
        batch = waiting.setdefault(url, [])
        batch.append(item)
        if len(batch) >= settings.report_batch_max:
            del waiting[url]
            spawn(post_reports(url, batch))
        elif len(batch) == 1:
            spawn(flush_later(url))

    async def deliver_later(taken: list[Sent]) -> None:
        """The messages taken by one request reach their phones together (one timer per request, not one per
        message)."""
        await asyncio.sleep(faults().deliver_delay_ms / 1000)
        suffix = faults().undeliverable_suffix
        for sent in taken:
            sent.status = "undeliverable" if suffix and sent.to.endswith(suffix) else "delivered"
            stats[f"status_{sent.status}"] += 1
            if sent.callback_url:
                report(sent.callback_url, {"idempotency_key": sent.key, "message_id": sent.message_id,
                                           "status": sent.status,
                                           "reason": "switched_off" if sent.status == "undeliverable" else None})

    def take(key: str, body: MessageIn, callback_url: str | None) -> Sent | str:
        """The message for a key: the one taken before (same content), a new one, or why not (a key reused with
        other content). A new one is not yet scheduled for delivery (the caller does it, per request)."""
        fingerprint = hashlib.sha256(f"{body.to}|{body.text}".encode()).hexdigest()
        existing = messages.get(key)
        if existing is not None:
            if existing.fingerprint != fingerprint:
                return "idempotency_key_reused"
            stats["duplicates_absorbed"] += 1
            return existing
        sent = Sent(key, fingerprint, body.to, body.text, callback_url)
        messages[key] = sent
        stats["messages_received"] += 1
        return sent

    @app.post("/v1/messages", status_code=202)
    async def send(body: MessageIn, idempotency_key: str = Header(..., max_length=64)) -> Any:
        f = faults()
        if f.latency_ms:
            await asyncio.sleep(f.latency_ms / 1000)
        if chance(f.error_rate):
            stats["errors_injected"] += 1
            return JSONResponse({"code": "unavailable"}, status_code=503)
        before = len(messages)
        sent = take(idempotency_key, body, body.callback_url)
        if isinstance(sent, str):
            return JSONResponse({"code": sent}, status_code=409)
        if len(messages) > before:
            spawn(deliver_later([sent]))
        if chance(f.timeout_rate):
            stats["timeouts_injected"] += 1
            await asyncio.sleep(f.timeout_sleep_ms / 1000)
        return sent.public()

    @app.post("/v1/messages/batch")
    async def send_batch(body: MessageBatchIn) -> dict[str, list[dict[str, Any]]]:
        """Many messages in one request, answered per message in the order sent: its status (`accepted`, or
        where it has got to for a key taken before: nothing is sent twice), `rejected` with a `code` (that
        message alone is refused: `invalid_message`, `idempotency_key_reused`), or `unavailable` (not taken: send
        it again, same key). Faults are drawn per message: `error_rate` makes one `unavailable`, `timeout_rate`
        takes it and makes the request's one answer late."""
        f = faults()
        stats["batches_received"] += 1
        if f.latency_ms:
            await asyncio.sleep(f.latency_ms / 1000)
        results: list[dict[str, Any]] = []
        new: list[Sent] = []
        late = False
        for item in body.messages:
            key = item.idempotency_key
            if chance(f.error_rate):
                stats["errors_injected"] += 1
                results.append({"idempotency_key": key, "status": "unavailable"})
                continue
            try:
                message = MessageIn.model_validate(item.model_extra or {})
            except ValidationError:
                results.append({"idempotency_key": key, "status": "rejected", "code": "invalid_message"})
                continue
            before = len(messages)
            sent = take(key, message, message.callback_url or body.callback_url)
            if isinstance(sent, str):
                results.append({"idempotency_key": key, "status": "rejected", "code": sent})
                continue
            if len(messages) > before:
                new.append(sent)
            results.append(sent.public())
            late = late or chance(f.timeout_rate)
        if new:
            spawn(deliver_later(new))
        if late:
            stats["timeouts_injected"] += 1
            await asyncio.sleep(f.timeout_sleep_ms / 1000)
        return {"results": results}

    @app.get("/v1/messages/{key}")
    async def status(key: str) -> Any:
        found = messages.get(key)
        if found is None:
            return JSONResponse({"code": "unknown_message"}, status_code=404)
        return found.public()

    @app.put("/admin/faults")
    async def set_faults(new: SmsFaults) -> SmsFaults:
        state["faults"] = new
        return new

    @app.get("/admin/stats")
    async def get_stats() -> dict[str, Any]:
        return {**stats, "messages": len(messages)}

    @app.get("/admin/messages")
    async def delivered() -> list[dict[str, Any]]:
        """Every message taken, in the order received: number, text, status (tests and the demo read it)."""
        return [{**m.public(), "to": m.to, "text": m.text, "received_at": m.received_at}
                for m in sorted(messages.values(), key=lambda m: m.received_at)]

    @app.get("/healthz")
    @app.get("/readyz")
    async def ready() -> dict[str, str]:
        return {"status": "ok"}

    return app
