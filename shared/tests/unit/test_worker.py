"""The one worker loop: busy passes follow each other, an idle worker sleeps until woken, a failing pass is
retried and the loop survives it, and a stop ends it promptly."""

import asyncio

import pytest

from shared.worker import Wakeup, run_worker


async def run_for(step, seconds: float, wakeup: Wakeup | None = None, idle_s: float = 10.0) -> None:
    stopping = asyncio.Event()
    task = asyncio.create_task(run_worker("test", step, stopping, idle_s=idle_s, wakeup=wakeup,
                                          backoff_initial_s=0.01, backoff_max_s=0.02))
    await asyncio.sleep(seconds)
    stopping.set()
    await asyncio.wait_for(task, 1.0)


async def test_a_busy_worker_runs_the_next_pass_at_once_and_an_idle_one_sleeps() -> None:
    passes: list[int] = []

    async def step() -> bool:
        passes.append(1)
        return len(passes) < 5  # five busy passes, then idle

    await run_for(step, 0.2)
    assert len(passes) == 5


async def test_a_wakeup_starts_the_next_pass_before_the_idle_time() -> None:
    wakeup, passes = Wakeup(), []

    async def step() -> bool:
        passes.append(1)
        return False

    async def wake_twice() -> None:
        for _ in range(2):
            await asyncio.sleep(0.05)
            wakeup.set()

    waker = asyncio.create_task(wake_twice())
    await run_for(step, 0.3, wakeup)
    await waker
    assert len(passes) == 3


async def test_a_failing_pass_is_retried_and_the_loop_goes_on() -> None:
    calls: list[int] = []

    async def step() -> bool:
        calls.append(1)
        if len(calls) <= 3:
            raise ConnectionError("database away")
        return False

    await run_for(step, 0.3)
    assert len(calls) == 4


async def test_a_stop_ends_an_idle_worker_at_once() -> None:
    async def step() -> bool:
        return False

    stopping = asyncio.Event()
    task = asyncio.create_task(run_worker("test", step, stopping, idle_s=3600))
    await asyncio.sleep(0.05)
    stopping.set()
    await asyncio.wait_for(task, 0.5)


async def test_an_idle_worker_polls_less_and_less_until_woken(monkeypatch: pytest.MonkeyPatch) -> None:
    """With idle_max_s, each idle pass in a row that nothing woke doubles the sleep up to the cap; a wake-up or a
    busy pass starts again from idle_s. (The sleeps are recorded, not slept: nothing here depends on timing.)"""
    import shared.worker

    stopping, slept, passes = asyncio.Event(), list[float](), list[int]()

    async def fake_sleep(_stopping: asyncio.Event, seconds: float, *wakeups: Wakeup) -> bool:
        slept.append(seconds)
        if len(slept) == 11:
            stopping.set()
        return len(slept) == 6  # the 6th sleep is cut short by a wake-up

    async def step() -> bool:
        passes.append(1)
        return len(passes) == 9  # the 9th pass finds a full batch

    monkeypatch.setattr(shared.worker, "sleep_unless", fake_sleep)
    await asyncio.wait_for(run_worker("test", step, stopping, idle_s=0.5, idle_max_s=4.0), 1.0)
    assert slept == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0, 0.5, 1.0, 0.5, 1.0, 2.0]


async def test_without_a_cap_an_idle_worker_keeps_its_idle_time(monkeypatch: pytest.MonkeyPatch) -> None:
    import shared.worker

    stopping, slept = asyncio.Event(), list[float]()

    async def fake_sleep(_stopping: asyncio.Event, seconds: float, *wakeups: Wakeup) -> bool:
        slept.append(seconds)
        if len(slept) == 4:
            stopping.set()
        return False

    async def step() -> bool:
        return False

    monkeypatch.setattr(shared.worker, "sleep_unless", fake_sleep)
    await asyncio.wait_for(run_worker("test", step, stopping, idle_s=0.5), 1.0)
    assert slept == [0.5] * 4
