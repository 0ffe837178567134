"""Before a test session that uses the local stack: forget the topics earlier runs left behind.

Several sessions may share one broker (two checkouts, or a benchmark beside the tests). Each session holds a shared
lock on a file in the run folder for its whole life; only a session that can take the lock exclusively, so no other
session is alive, deletes the old run topics. MEDASSIST_KEEP_RUN_TOPICS=1 skips the clean-up outright.
"""

import asyncio
import fcntl
import os
from pathlib import Path

import pytest
from aiokafka.errors import KafkaError

from shared.settings import ServiceSettings
from shared.testing import delete_run_topics, stack_available

_session_lock: list[int] = []  # the open lock file, held until the process ends


def _alone_on_this_stack() -> bool:
    """Take the shared session lock; True when no other session held it (exclusive succeeded first)."""
    run_dir = Path(os.environ.get("MEDASSIST_RUN_DIR", Path(__file__).parent / ".run"))
    run_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(run_dir / "test-sessions.lock", os.O_RDWR | os.O_CREAT, 0o644)
    _session_lock.append(fd)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        alone = True
    except BlockingIOError:
        alone = False
    fcntl.flock(fd, fcntl.LOCK_SH)
    return alone


def pytest_sessionstart(session: pytest.Session) -> None:
    if session.config.getoption("markexpr") == "not integration and not e2e":
        return  # make test-unit: no stack needed
    if not _alone_on_this_stack() or os.environ.get("MEDASSIST_KEEP_RUN_TOPICS"):
        return  # another session shares this broker: its topics are not ours to delete

    async def clean() -> None:
        settings = ServiceSettings()
        if not await stack_available(settings):
            return  # no stack: the tests that need it say so themselves
        try:
            deleted = await delete_run_topics(settings)
        except (KafkaError, OSError) as exc:
            print(f"[tests] could not delete old run topics ({type(exc).__name__}); continuing")
            return
        if deleted:
            print(f"[tests] deleted {deleted} topics left by earlier runs")

    asyncio.run(clean())
