"""The gateway adapter against a small local HTTP server: retries under one key, and the traced session only for
a message of a sampled trace."""

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiohttp import web
from notification.adapters.sms_gateway import Sms, SmsGateway, SmsReceipt, SmsRejected, classify
from opentelemetry import trace
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

from shared.http_client import PartnerUnavailable
from shared.testing import serving

BatchAnswer = Callable[[list[dict[str, Any]]], Any]  # the messages of a request -> an HTTP status or a body


def taken(items: list[dict[str, Any]]) -> dict[str, Any]:
    return {"results": [{"idempotency_key": m["idempotency_key"], "message_id": f"SM{i}", "status": "accepted"}
                        for i, m in enumerate(items)]}


class Gateway:
    def __init__(self) -> None:
        self.answers: list[int] = []  # status codes to answer first, then 202
        self.seen: list[dict[str, Any]] = []
        self.batch_answers: list[BatchAnswer] = []  # how to answer the next batch requests, then all taken
        self.batches: list[list[dict[str, Any]]] = []

    async def handle_batch(self, request: web.Request) -> web.Response:
        body = await request.json()
        items = body["messages"]
        self.batches.append(items)
        self.seen.append({"traceparent": request.headers.get("traceparent"), "callback_url": body["callback_url"]})
        answer = (self.batch_answers.pop(0) if self.batch_answers else taken)(items)
        if answer == "hang":
            await asyncio.sleep(1)
            answer = taken(items)
        if isinstance(answer, int):
            return web.json_response({"code": "too_many" if answer == 413 else "unavailable"}, status=answer)
        return web.json_response(answer)

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
    app.router.add_post("/v1/messages/batch", fake.handle_batch)
    async with serving(app) as url:
        yield fake, url


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


A, B, C = "a", "b", "c"


@pytest.mark.parametrize(("items", "receipts", "rejected", "unknown"), [
    ([{"idempotency_key": A, "message_id": "SM1", "status": "accepted"},
      {"idempotency_key": B, "message_id": "SM2", "status": "delivered"},
      {"idempotency_key": C, "status": "rejected", "code": "invalid_message"}],
     {A: ("SM1", "accepted"), B: ("SM2", "delivered")}, {C: "invalid_message"}, set()),
    ([{"idempotency_key": A, "status": "unavailable"}, {"idempotency_key": B, "status": "queued", "message_id": "x"},
      {"idempotency_key": C, "status": "accepted"}], {}, {}, {A, B, C}),  # not taken, a word not known, no id
    ([{"idempotency_key": A, "message_id": "SM1", "status": "accepted"},
      {"idempotency_key": A, "message_id": "SM1", "status": "accepted"},
      {"idempotency_key": B, "message_id": "SM2", "status": "accepted"},
      {"idempotency_key": B, "status": "rejected", "code": "x"}],
     {A: ("SM1", "accepted")}, {}, {B, C}),  # the same word twice is one word; two words for a key: unknown
    ([{"idempotency_key": "other", "message_id": "SM9", "status": "accepted"}, "garbage", None,
      {"idempotency_key": A, "status": "rejected"}], {}, {A: "rejected"}, {B, C}),  # keys not sent: ignored
    ([{"idempotency_key": A, "message_id": "SM1", "status": "undeliverable"}], {A: ("SM1", "undeliverable")}, {},
     {B, C}),  # taken, then switched off: the delivery report says so
])
def test_a_batch_answer_is_read_per_key_and_nothing_is_guessed(
        items: list[Any], receipts: dict[str, tuple[str, str]], rejected: dict[str, str], unknown: set[str]) -> None:
    answer = classify([A, B, C], items)
    assert answer.receipts == {k: SmsReceipt(k, gid, status) for k, (gid, status) in receipts.items()}
    assert answer.rejected == rejected and answer.unknown == unknown
    assert set(answer.receipts) | set(answer.rejected) | answer.unknown == {A, B, C}, "every key sent is answered"


def batch(n: int) -> list[Sms]:
    return [sms() for _ in range(n)]


async def test_a_batch_is_one_request_and_only_what_is_still_unknown_goes_again_under_its_key(
        gateway: tuple[Gateway, str]) -> None:
    fake, url = gateway
    adapter = SmsGateway(url, timeout_s=0.3, max_attempts=4, backoff_initial_s=0.01, backoff_max_s=0.02)
    try:
        messages = batch(3)
        keys = [m.idempotency_key for m in messages]

        def one_not_taken(items: list[dict[str, Any]]) -> Any:
            answer = taken(items)
            answer["results"][1] = {"idempotency_key": items[1]["idempotency_key"], "status": "unavailable"}
            del answer["results"][2]  # left out: as unknown as not taken
            return answer

        fake.batch_answers = [lambda items: 503, one_not_taken, lambda items: "hang"]
        answer = await adapter.send_batch(messages, "http://back/v1/sms/delivery-reports")
        assert set(answer.receipts) == set(keys) and not answer.unknown and not answer.rejected
        assert [[m["idempotency_key"] for m in b] for b in fake.batches] == [keys, keys, keys[1:], keys[1:]], \
            "after a 5xx all again; after a partial answer only those without a word; after a timeout the same"
        assert all(m["to"] == "13800138001" for b in fake.batches for m in b)
        assert fake.seen[0]["callback_url"] == "http://back/v1/sms/delivery-reports"
    finally:
        await adapter.aclose()


async def test_a_batch_without_an_answer_stays_unknown_and_a_refused_request_refuses_each_message(
        gateway: tuple[Gateway, str]) -> None:
    fake, url = gateway
    adapter = SmsGateway(url, max_attempts=2, backoff_initial_s=0.01, backoff_max_s=0.02)
    try:
        messages = batch(2)
        fake.batch_answers = [lambda items: 503, lambda items: 503]
        answer = await adapter.send_batch(messages)
        assert answer.unknown == {m.idempotency_key for m in messages} and len(fake.batches) == 2, \
            "max_attempts in all; then unknown, for a later pass under the same keys"
        fake.batches, fake.batch_answers = [], [lambda items: 413]
        answer = await adapter.send_batch(messages)
        assert answer.rejected == dict.fromkeys((m.idempotency_key for m in messages), "too_many")
        assert len(fake.batches) == 1, "a refusal is not retried"
        fake.batches, fake.batch_answers = [], [lambda items: {"results": "nonsense"}] * 2
        assert (await adapter.send_batch(messages)).unknown == {m.idempotency_key for m in messages}
    finally:
        await adapter.aclose()


async def test_a_batch_carries_the_trace_only_when_asked_to(gateway: tuple[Gateway, str]) -> None:
    fake, url = gateway
    adapter = SmsGateway(url)
    try:
        with within(sampled=True):
            await adapter.send_batch(batch(1), sampled=True)
            await adapter.send_batch(batch(1))
    finally:
        await adapter.aclose()
    assert [s["traceparent"] is not None for s in fake.seen] == [True, False]
