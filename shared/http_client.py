"""Outbound HTTP to a partner (a bank, an SMS gateway): one traced aiohttp session, bounded retries."""

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

import aiohttp
from opentelemetry.instrumentation.aiohttp_client import create_trace_config
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
