"""Before a test session that uses the local stack: forget the topics earlier runs left behind."""

import asyncio
import os

import pytest
from aiokafka.errors import KafkaError

from shared.settings import ServiceSettings
from shared.testing import delete_run_topics, stack_available


def pytest_sessionstart(session: pytest.Session) -> None:
    if session.config.getoption("markexpr") == "not integration and not e2e":
        return  # make test-unit: no stack needed
    if os.environ.get("MEDASSIST_KEEP_RUN_TOPICS"):
        return  # another test session shares this broker: its topics are not ours to delete

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
