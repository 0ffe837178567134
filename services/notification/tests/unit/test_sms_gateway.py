"""The gateway adapter against a small local HTTP server: retries under one key, and the traced session only for
a message of a sampled trace."""

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from notification.adapters.sms_gateway import Sms, SmsGateway, SmsRejected
from opentelemetry import trace
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

from shared.http_client import PartnerUnavailable


class Gateway:
    def __init__(self) -> None:
        self.answers: list[int] = []  # status codes to answer first, then 202
        self.seen: list[dict[str, Any]] = []

    async def handle(self, request: web.Request) -> web.Response:
        self.seen.append({"key": request.headers.get("Idempotency-Key"),
                          "traceparent": request.headers.get("traceparent")})
        status = self.answers.pop(0) if self.answers else 202
        if status != 202:
            return web.json_response({"code": "not_mobile" if status == 422 else "unavailable"}, status=status)
        key = request.headers["Idempotency-Key"]
        return web.json_response({"idempotency_key": key, "message_id": "SM1", "status": "accepted"}, status=202)


@pytest.fixture
async def gateway() -> AsyncIterator[tuple[Gateway, str]]:
    fake = Gateway()
    app = web.Application()
    app.router.add_post("/v1/messages", fake.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]  # started: it has its socket
    try:
        yield fake, f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


def sms() -> Sms:
    return Sms(str(uuid.uuid4()), "13800138001", "【医疗救助】text")


def within(sampled: bool) -> Any:
    flags = TraceFlags(TraceFlags.SAMPLED if sampled else TraceFlags.DEFAULT)
    context = SpanContext(int(uuid.uuid4().hex, 16), int(uuid.uuid4().hex[:16], 16), True, flags)
    return trace.use_span(NonRecordingSpan(context))


async def test_a_transient_failure_is_retried_under_the_same_key_then_given_up(
        gateway: tuple[Gateway, str]) -> None:
    fake, url = gateway
    adapter = SmsGateway(url, max_attempts=3, backoff_initial_s=0.01, backoff_max_s=0.02)
    try:
        message = sms()
        fake.answers = [503, 503]
        receipt = await adapter.send(message)
        assert receipt.status == "accepted" and [s["key"] for s in fake.seen] == [message.idempotency_key] * 3
        fake.answers, fake.seen = [503] * 3, []
        with pytest.raises(PartnerUnavailable):
            await adapter.send(sms())
        assert len(fake.seen) == 3, "max_attempts in all, the first one included"
        fake.answers, fake.seen = [422], []
        with pytest.raises(SmsRejected):
            await adapter.send(sms())
        assert len(fake.seen) == 1, "a refusal is not retried"
    finally:
        await adapter.aclose()


async def test_only_a_message_of_a_sampled_trace_carries_the_trace_to_the_gateway(
        gateway: tuple[Gateway, str]) -> None:
    fake, url = gateway
    adapter = SmsGateway(url)
    try:
        with within(sampled=True):
            await adapter.send(sms())
        with within(sampled=False):
            await adapter.send(sms())
    finally:
        await adapter.aclose()
    assert [s["traceparent"] is not None for s in fake.seen] == [True, False]
