"""The adapter's batch send against the SMS gateway simulator (its own process): one request for many messages,
each refused alone or taken once under its key, however often a batch goes again; the single form still works."""

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from aiohttp import web
from notification.adapters.sms_gateway import Sms, SmsGateway

from shared.testing import ServiceProcess, free_port, serving

CALM = {"latency_ms": 0, "error_rate": 0.0, "timeout_rate": 0.0, "timeout_sleep_ms": 5000, "deliver_delay_ms": 20}


@pytest.fixture(scope="module")
async def simulator() -> AsyncIterator[str]:
    port = free_port()
    process = ServiceProcess("simulators.sms", {"SMS_SIM_PORT": str(port), "SMS_SIM_DELIVER_DELAY_MS": "20",
                                                "SMS_SIM_REPORT_LINGER_MS": "20"}, port).start()
    try:
        await process.wait_ready()
        yield process.url
    finally:
        process.stop()
    assert b"13800" not in process.log_path.read_bytes(), "a phone number reached the simulator's log"


async def admin(url: str, method: str, path: str, **kwargs: Any) -> Any:
    async with httpx.AsyncClient(base_url=url) as client:
        response = await client.request(method, path, **kwargs)
        response.raise_for_status()
        return response.json()


def sms(text: str = "【医疗救助】您的医疗救助1,234.56 元已审核通过。", to: str | None = None) -> Sms:
    return Sms(str(uuid.uuid4()), to or f"13800{uuid.uuid4().int % 10**5:05d}1", text)  # never ending 0000


async def test_a_batch_refuses_a_message_alone_and_sent_again_sends_nothing_twice(simulator: str) -> None:
    await admin(simulator, "PUT", "/admin/faults", json=CALM)
    gateway = SmsGateway(simulator, max_attempts=1)
    try:
        good = [sms() for _ in range(4)]
        bad = sms(to="12345")  # not a mobile number: that message alone is refused
        first = await gateway.send_batch([*good, bad])
        assert set(first.receipts) == {m.idempotency_key for m in good} and not first.unknown
        assert first.rejected == {bad.idempotency_key: "invalid_message"}
        before = await admin(simulator, "GET", "/admin/stats")
        again = await gateway.send_batch(good)  # as after a timeout: the same keys again
        assert {k: r.gateway_id for k, r in again.receipts.items()} == {
            k: r.gateway_id for k, r in first.receipts.items()}, "the gateway answers a key with its first message"
        single = await gateway.send(good[0])  # the single-message form knows the batch's messages
        assert single.gateway_id == first.receipts[good[0].idempotency_key].gateway_id
        reused = Sms(good[1].idempotency_key, good[1].to, "another text")
        mixed = await gateway.send_batch([reused, fresh := sms()])
        assert mixed.rejected == {reused.idempotency_key: "idempotency_key_reused"}
        assert set(mixed.receipts) == {fresh.idempotency_key}
        after = await admin(simulator, "GET", "/admin/stats")
        assert after["messages"] == before["messages"] + 1, "only the fresh message was taken"
        assert after["duplicates_absorbed"] - before.get("duplicates_absorbed", 0) == 5
    finally:
        await gateway.aclose()


async def test_a_flaky_gateway_takes_every_message_of_a_batch_exactly_once(simulator: str) -> None:
    await admin(simulator, "PUT", "/admin/faults", json={**CALM, "error_rate": 0.3, "timeout_rate": 0.05,
                                                         "timeout_sleep_ms": 600})
    gateway = SmsGateway(simulator, timeout_s=0.3, max_attempts=3, backoff_initial_s=0.01, backoff_max_s=0.05)
    try:
        messages = [sms(f"【医疗救助】第{i}条") for i in range(60)]
        left, passes = list(messages), 0
        while left and passes < 20:  # what a pass leaves unknown goes in a later pass, same keys
            answer = await gateway.send_batch(left)
            assert not answer.rejected
            left = [m for m in left if m.idempotency_key in answer.unknown]
            passes += 1
        assert not left, f"still unknown after {passes} passes"
    finally:
        await gateway.aclose()
        stats = await admin(simulator, "GET", "/admin/stats")
        await admin(simulator, "PUT", "/admin/faults", json=CALM)
    taken = [m for m in await admin(simulator, "GET", "/admin/messages")
             if m["idempotency_key"] in {s.idempotency_key for s in messages}]
    assert sorted(m["idempotency_key"] for m in taken) == sorted(s.idempotency_key for s in messages), \
        "each key taken once"
    assert stats["errors_injected"] > 0 and stats["batches_received"] >= 2


async def test_the_messages_of_a_batch_are_reported_back_in_batches(simulator: str) -> None:
    await admin(simulator, "PUT", "/admin/faults", json=CALM)
    reports: list[dict[str, Any]] = []
    callbacks = 0

    async def receive(request: web.Request) -> web.Response:
        nonlocal callbacks
        callbacks += 1
        reports.extend(json.loads(await request.read())["reports"])
        return web.json_response({"status": "received"}, status=202)

    app = web.Application()
    app.router.add_post("/v1/sms/delivery-reports", receive)
    gateway = SmsGateway(simulator)
    async with serving(app) as receiver:
        try:
            messages = [sms() for _ in range(30)]
            answer = await gateway.send_batch(messages, f"{receiver}/v1/sms/delivery-reports")
            assert len(answer.receipts) == 30
            for _ in range(100):
                if len(reports) >= 30:
                    break
                await asyncio.sleep(0.05)
            assert sorted(r["idempotency_key"] for r in reports) == sorted(m.idempotency_key for m in messages)
            assert {r["status"] for r in reports} == {"delivered"} and callbacks <= 3
        finally:
            await gateway.aclose()
