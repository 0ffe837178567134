"""Before a test session that uses the local stack: forget the topics earlier runs left behind.

Several sessions may share one broker (two checkouts, or a benchmark beside the tests). Each session, and each
benchmark, holds a shared lock on a file in the run folder for its whole life (shared.testing.join_stack_sessions);
only a session that can take the lock exclusively, so nothing else is alive, deletes the old run topics.
MEDASSIST_KEEP_RUN_TOPICS=1 skips the clean-up outright.
"""

import asyncio
import os

import pytest
from aiokafka.errors import KafkaError

from shared.settings import ServiceSettings
from shared.testing import delete_run_topics, join_stack_sessions, stack_available


def pytest_sessionstart(session: pytest.Session) -> None:
    if session.config.getoption("markexpr") == "not integration and not e2e":
        return  # make test-unit: no stack needed
    if not join_stack_sessions() or os.environ.get("MEDASSIST_KEEP_RUN_TOPICS"):
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
