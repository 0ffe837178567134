"""The one background-worker loop: do a pass, and when it found nothing more to do, sleep until woken or the
idle time is up. A failing pass is logged and retried with capped, jittered exponential backoff (tenacity, as
ADR 0010 chose); the loop never dies of it. Every background job of every service runs on it (the outbox relay,
the payment sender and resolver, the SMS sender, gauges)."""

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, wait_exponential_jitter

log = logging.getLogger(__name__)


class Wakeup:
    """Wakes a sleeping worker early (set by whoever made work for it, e.g. after a commit)."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def set(self) -> None:
        self._event.set()

    def clear(self) -> None:
        self._event.clear()

    async def wait(self) -> None:
        await self._event.wait()


async def sleep_unless(stopping: asyncio.Event, seconds: float, *wakeups: Wakeup) -> bool:
    """Sleep `seconds`, returning early when `stopping` or any of `wakeups` is set; True when it returned early."""
    waiters = [asyncio.ensure_future(stopping.wait()), *(asyncio.ensure_future(w.wait()) for w in wakeups)]
    try:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED), timeout=seconds)
            return True
        return False
    finally:
        for waiter in waiters:
            waiter.cancel()


async def run_worker(name: str, step: Callable[[], Awaitable[bool]], stopping: asyncio.Event, *,
                     idle_s: float, wakeup: Wakeup | None = None, idle_max_s: float | None = None,
                     backoff_initial_s: float = 0.1, backoff_max_s: float = 5.0) -> None:
    """Run `step` until `stopping` is set.

    `step` returns True when there may be more work right away (a full batch), False when it is idle; then the
    loop sleeps `idle_s` or until `wakeup` is set. The wakeup is cleared before each pass, so work made during a
    pass wakes the next one. With `idle_max_s`, each idle pass in a row that nothing woke doubles the sleep, up
    to `idle_max_s`: a poll for work that the clock (not a signal) makes due costs a transaction a pass, so an
    idle service polls less; a busy pass or a wake-up starts again from `idle_s`.
    """
    wakeups = (wakeup,) if wakeup else ()

    def log_failure(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        log.warning("%s pass failed (%s); retrying in %.1fs", name, type(exc).__name__,
                    state.next_action.sleep if state.next_action else 0.0, exc_info=exc)

    async def pause(seconds: float) -> None:
        await sleep_unless(stopping, seconds)

    sleep_s = idle_s
    while not stopping.is_set():
        if wakeup:
            wakeup.clear()
        busy = False
        retrying = AsyncRetrying(retry=retry_if_exception_type(Exception), reraise=True, sleep=pause,
                                 wait=wait_exponential_jitter(multiplier=backoff_initial_s, max=backoff_max_s),
                                 before_sleep=log_failure)
        async for attempt in retrying:
            with attempt:
                if stopping.is_set():
                    return
                busy = await step()
        if busy:
            sleep_s = idle_s
        elif await sleep_unless(stopping, sleep_s, *wakeups):
            sleep_s = idle_s
        elif idle_max_s is not None:
            sleep_s = min(sleep_s * 2, idle_max_s)
