"""Outbound HTTP to a partner (a bank, an SMS gateway): one traced aiohttp session, bounded retries."""

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import aiohttp
from opentelemetry import trace
from opentelemetry.instrumentation.aiohttp_client import create_trace_config
from opentelemetry.trace import SpanContext
from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_exponential_jitter

T = TypeVar("T")


class PartnerServerError(Exception):
    """The partner answered 5xx or 429: it did not take the request; try again."""

    def __init__(self, status: int) -> None:
        super().__init__(f"http_{status}")
        self.status = status


class PartnerUnavailable(Exception):
    """Retries are exhausted; the same request (same idempotency key) is tried again later."""


def is_transient(exc: BaseException) -> bool:
    """Failures a retry with the same idempotency key may get past."""
    return isinstance(exc, (PartnerServerError, aiohttp.ClientConnectionError, aiohttp.ClientPayloadError,
                            asyncio.TimeoutError))


def traced_session(base_url: str, timeout_s: float, connections: int = 64) -> aiohttp.ClientSession:
    """A session whose every request is a client span (method, URL, status; never a body) carrying the trace
    in its traceparent header. Create it inside the running event loop."""
    return aiohttp.ClientSession(base_url=base_url, timeout=aiohttp.ClientTimeout(total=timeout_s),
                                 connector=aiohttp.TCPConnector(limit=connections),
                                 trace_configs=[create_trace_config()])


def client_span_recorded(parent: SpanContext) -> bool:
    """Whether the services' sampler (`shared.telemetry.production_sampler`) can record an HTTP client span
    started under `parent` (the current span's context): inside a sampled trace; under a remote parent the head
    sampler left out (`RecordUnsampledEntries` makes it record-only, for the error/slow rule); parentless (a root
    of its own, sampled by ratio or record-only). Never under a local span of an unsampled trace (a sender's
    unsampled `bank batch`): the parent-based sampler drops it there, after the instrumentation has built it."""
    return not parent.is_valid or parent.trace_flags.sampled or parent.is_remote


class PartnerSession:
    """Requests to one partner through two aiohttp sessions: the traced one (`traced_session`: a client span and
    the traceparent header) when the request's client span can be recorded (`client_span_recorded`), a plain one
    otherwise. Building the span the sampler then drops (redacted URL, host and port, semantic-convention
    attributes, header capture) was 13-15 % of notification's CPU (ADR 0046, 0053). A request of an unsampled trace
    sends no traceparent: the partner does not trace, and the unsampled trace has no recorded span to join.
    Create it inside the running event loop; the sessions are opened on first use."""

    def __init__(self, base_url: str, timeout_s: float, connections: int = 64) -> None:
        self._base_url, self._timeout_s, self._connections = base_url, timeout_s, connections
        self._traced: aiohttp.ClientSession | None = None
        self._plain: aiohttp.ClientSession | None = None

    @property
    def traced(self) -> aiohttp.ClientSession:
        if self._traced is None:
            self._traced = traced_session(self._base_url, self._timeout_s, self._connections)
        return self._traced

    @property
    def plain(self) -> aiohttp.ClientSession:
        if self._plain is None:
            self._plain = aiohttp.ClientSession(base_url=self._base_url,
                                                timeout=aiohttp.ClientTimeout(total=self._timeout_s),
                                                connector=aiohttp.TCPConnector(limit=self._connections))
        return self._plain

    def session(self) -> aiohttp.ClientSession:
        """The session for a request made now, in the current span's context."""
        return self.traced if client_span_recorded(trace.get_current_span().get_span_context()) else self.plain

    def request(self, method: str, path: str, **request: Any) -> Any:
        """`aiohttp.ClientSession.request` on the session for the current context (use it with `async with`)."""
        return self.session().request(method, path, **request)

    async def close(self) -> None:
        for session in (self._traced, self._plain):
            if session is not None:
                await session.close()
        self._traced = self._plain = None


async def with_retries(call: Callable[[], Awaitable[T]], *, max_attempts: int, initial_s: float, max_s: float,
                       transient: Callable[[BaseException], bool] = is_transient) -> T:
    """Bounded retries with exponential backoff and jitter for transient failures; PartnerUnavailable after."""
    try:
        async for attempt in AsyncRetrying(stop=stop_after_attempt(max_attempts), reraise=True,
                                           wait=wait_exponential_jitter(multiplier=initial_s, max=max_s),
                                           retry=retry_if_exception(transient)):
            with attempt:
                return await call()
    except Exception as exc:
        if transient(exc):
            raise PartnerUnavailable(type(exc).__name__) from exc
        raise
    raise PartnerUnavailable("no attempt made")  # unreachable: AsyncRetrying always makes one attempt
