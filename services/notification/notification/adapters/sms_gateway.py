"""The SMS gateway adapter: a message's id is its idempotency key, in every request that carries it. Messages go
many to a request (`send_batch`, ADR 0051); one at a time (`send`) still works."""

import asyncio
import random
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import aiohttp
from opentelemetry import trace

from shared.http_client import PartnerServerError, PartnerUnavailable, is_transient, traced_session, with_retries


@dataclass(frozen=True)
class Sms:
    idempotency_key: str
    to: str
    text: str
    callback_url: str | None = None

    def __repr__(self) -> str:  # never print a phone number, even by accident
        return f"Sms(key={self.idempotency_key!r}, to={self.to[:3]}****{self.to[-4:]}, text=<{len(self.text)}>)"

    __str__ = __repr__


@dataclass(frozen=True)
class SmsReceipt:
    idempotency_key: str
    gateway_id: str
    status: str  # accepted | delivered | undeliverable


ACCEPTED = frozenset({"accepted", "delivered", "undeliverable"})
"""The words of a batch answer that mean the gateway holds the message (`undeliverable`: taken, then reported
switched off; the delivery report says so)."""
T = TypeVar("T")


@dataclass
class SmsBatchAnswer:
    """The gateway's word on each key of a batch: a receipt, a refusal (that message alone), or still unknown
    (not taken, not answered, answered unreadably, or the request's fate unknown): send again, same key."""

    receipts: dict[str, SmsReceipt] = field(default_factory=dict)
    rejected: dict[str, str] = field(default_factory=dict)
    unknown: set[str] = field(default_factory=set)

    def absorb(self, other: "SmsBatchAnswer") -> None:
        """Take in a later answer about keys still unknown (a key answered already keeps its first word)."""
        for key, receipt in other.receipts.items():
            if key in self.unknown:
                self.receipts[key] = receipt
                self.unknown.discard(key)
        for key, reason in other.rejected.items():
            if key in self.unknown:
                self.rejected[key] = reason
                self.unknown.discard(key)


def classify(sent: Iterable[str], items: Iterable[Any]) -> SmsBatchAnswer:
    """A batch answer's items sorted per key sent. Taken (`ACCEPTED`, with the gateway's message id): a
    receipt; `rejected`: refused alone, with its code; anything else (`unavailable`, a word not known here, an
    item unreadable, two different words for one key, a key left out) leaves the key unknown: never guessed.
    Items about keys not sent are ignored."""
    wanted = set(sent)
    words: dict[str, set[tuple[str, str]]] = {}
    for item in items:
        if not isinstance(item, dict):
            continue
        key, status = item.get("idempotency_key"), item.get("status")
        if key not in wanted or not isinstance(status, str):
            continue
        detail = item.get("message_id") if status in ACCEPTED else item.get("code") if status == "rejected" else ""
        words.setdefault(key, set()).add((status, str(detail or "")))
    answer = SmsBatchAnswer()
    for key in wanted:
        said = words.get(key, set())
        if len(said) != 1:
            answer.unknown.add(key)
            continue
        [(status, detail)] = said
        if status in ACCEPTED and detail:
            answer.receipts[key] = SmsReceipt(key, detail, status)
        elif status == "rejected":
            answer.rejected[key] = (detail or "rejected")[:64]
        else:
            answer.unknown.add(key)
    return answer


class SmsRejected(Exception):
    """The gateway refused the message itself (4xx, e.g. not a mobile number): retrying cannot help."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class SmsGateway:
    """REST SMS gateway (the project's simulator speaks it). A timeout is safe to retry: the gateway returns
    the first message for a key it has seen, and sends nothing again."""

    def __init__(self, base_url: str, timeout_s: float = 2.0, max_attempts: int = 4,
                 backoff_initial_s: float = 0.2, backoff_max_s: float = 5.0) -> None:
        self._base_url, self._timeout_s = base_url, timeout_s
        self._http: aiohttp.ClientSession | None = None
        self._plain: aiohttp.ClientSession | None = None
        self._max_attempts = max_attempts
        self._backoff_initial_s, self._backoff_max_s = backoff_initial_s, backoff_max_s

    @property
    def http(self) -> aiohttp.ClientSession:
        """For a message of a sampled trace: every request a client span, the trace in its traceparent."""
        if self._http is None:
            self._http = traced_session(self._base_url, self._timeout_s)
        return self._http

    @property
    def plain(self) -> aiohttp.ClientSession:
        """For a message of an unsampled trace (most, under the production sampler): the client span would not
        be recorded, but building it (URL, attributes, headers) was 13-15 % of the service's CPU."""
        if self._plain is None:
            self._plain = aiohttp.ClientSession(base_url=self._base_url,
                                                timeout=aiohttp.ClientTimeout(total=self._timeout_s),
                                                connector=aiohttp.TCPConnector(limit=64))
        return self._plain

    def session(self, sampled: bool) -> aiohttp.ClientSession:
        return self.http if sampled else self.plain

    async def _retrying(self, once: Callable[[], Awaitable[T]]) -> T:
        """The first attempt directly; only a transient failure brings in the retrying (after the first backoff,
        `max_attempts` in all): a tenacity loop around every request was ~3 % of the service's CPU."""
        try:
            return await once()
        except Exception as exc:
            if not is_transient(exc):
                raise
            if self._max_attempts <= 1:
                raise PartnerUnavailable(type(exc).__name__) from exc
        await asyncio.sleep(min(self._backoff_initial_s + random.uniform(0, 1), self._backoff_max_s))
        return await with_retries(once, max_attempts=self._max_attempts - 1, initial_s=self._backoff_initial_s,
                                  max_s=self._backoff_max_s)

    async def send_batch(self, messages: Sequence[Sms], callback_url: str | None = None, *,
                         sampled: bool = False) -> SmsBatchAnswer:
        """Hand many messages to the gateway in one request; every key sent is in the answer.

        Each message keeps its own idempotency key, so a request sent again sends nothing twice (the gateway
        answers a key it holds with that message). A request that fails transiently (5xx, 429, a timeout, the
        connection lost: whether the gateway took any of it is unknown) is sent again with the messages still
        unknown, as is one whose answer left some unknown (`unavailable`, left out, unreadable), within
        `max_attempts`; what is still unknown then is for a later pass, under the same keys. A refusal of the
        whole request (4xx) refuses each message still unknown, as a refusal of a single message does."""
        answer = SmsBatchAnswer(unknown={m.idempotency_key for m in messages})
        http = self.session(sampled)

        async def once() -> None:
            left = [m for m in messages if m.idempotency_key in answer.unknown]
            body = {"messages": [{"idempotency_key": m.idempotency_key, "to": m.to, "text": m.text} for m in left],
                    "callback_url": callback_url}
            async with http.post("/v1/messages/batch", json=body) as response:
                if response.status >= 500 or response.status == 429:
                    raise PartnerServerError(response.status)
                if response.status >= 400:
                    raise SmsRejected(await _reason(response))
                try:
                    got = await response.json()
                except (aiohttp.ContentTypeError, ValueError):  # taken or not, unknown: as a 5xx, go again
                    raise PartnerServerError(response.status) from None
            items = got.get("results") if isinstance(got, dict) else None
            answer.absorb(classify((m.idempotency_key for m in left), items if isinstance(items, list) else []))
            if answer.unknown:  # answered, but not for every message: those go again
                raise PartnerServerError(503)

        try:
            await self._retrying(once)
        except PartnerUnavailable:
            pass  # answer.unknown holds what is still without a word
        except SmsRejected as exc:
            answer.absorb(SmsBatchAnswer(rejected=dict.fromkeys(answer.unknown, exc.reason)))
        return answer

    async def send(self, sms: Sms) -> SmsReceipt:
        """Hand one message to the gateway; SmsRejected, or PartnerUnavailable once retries are spent (the
        single-message form of the gateway's API)."""
        body = {"to": sms.to, "text": sms.text, "callback_url": sms.callback_url}
        http = self.session(trace.get_current_span().get_span_context().trace_flags.sampled)

        async def once() -> SmsReceipt:
            async with http.post("/v1/messages", json=body,
                                 headers={"Idempotency-Key": sms.idempotency_key}) as response:
                if response.status >= 500 or response.status == 429:
                    raise PartnerServerError(response.status)
                if response.status >= 400:
                    raise SmsRejected(await _reason(response))
                return _receipt(await response.json())

        return await self._retrying(once)

    async def aclose(self) -> None:
        for session in (self._http, self._plain):
            if session is not None:
                await session.close()


def _receipt(body: dict[str, Any]) -> SmsReceipt:
    return SmsReceipt(str(body["idempotency_key"]), str(body["message_id"]), str(body["status"]))


async def _reason(response: aiohttp.ClientResponse) -> str:
    try:
        return str((await response.json()).get("code") or f"http_{response.status}")[:64]
    except (aiohttp.ContentTypeError, ValueError):
        return f"http_{response.status}"
