"""Retrying a call while a dependency is away, with tenacity (ADR 0010) everywhere: the one way this code waits
for a broker or database at start-up, or for the broker to take a message that must not be lost.

Bounded retries of a partner's HTTP call are shared.http_client.with_retries; the wake-or-idle loop of a
background job is shared.worker.run_worker.
"""

import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, stop_after_attempt, stop_never, wait_fixed

log = logging.getLogger(__name__)
T = TypeVar("T")


async def until_up(call: Callable[[], Awaitable[T]], what: str, *,
                   retry_on: type[BaseException] | tuple[type[BaseException], ...],
                   attempts: int | None = None, wait_s: float = 1.0) -> T:
    """`call()`, retried every `wait_s` while it raises one of `retry_on`; without `attempts`, until it succeeds.

    Anything else (and the last failure, when `attempts` is given) is raised as it came.
    """
    def warn(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        log.warning("%s failed (%s); retrying", what, type(exc).__name__)

    async for attempt in AsyncRetrying(stop=stop_after_attempt(attempts) if attempts else stop_never,
                                       wait=wait_fixed(wait_s), retry=retry_if_exception_type(retry_on),
                                       before_sleep=warn, reraise=True):
        with attempt:
            return await call()
    raise AssertionError("unreachable: tenacity makes at least one attempt")
