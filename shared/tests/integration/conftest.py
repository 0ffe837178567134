from collections.abc import AsyncIterator

import pytest

from shared.db import Database
from shared.messaging.kafka import KafkaProducer
from shared.messaging.tables import MESSAGING_TABLES
from shared.migrations import apply_runtime_grants
from shared.settings import ServiceSettings
from shared.testing import prepare, stack_available, unique_prefix


@pytest.fixture
async def probe_settings() -> ServiceSettings:
    settings = ServiceSettings(service_name="probe", topic_prefix=unique_prefix("probe"),
                               database_name="test_probe", consumer_batch_max=200)
    if not await stack_available(settings):
        pytest.fail("PostgreSQL is not reachable: run `make up` (make test does it for you)")
    await prepare(settings)
    owner = Database(settings, owner=True)
    async with owner.engine.begin() as conn:
        for table in MESSAGING_TABLES:
            await conn.run_sync(table.create)
        await conn.exec_driver_sql("CREATE TABLE probe_effects (event_id uuid PRIMARY KEY, applied int NOT NULL)")
        await conn.run_sync(apply_runtime_grants, settings.app_role)
    await owner.dispose()
    return settings


@pytest.fixture
async def db(probe_settings: ServiceSettings) -> AsyncIterator[Database]:
    database = Database(probe_settings)
    yield database
    await database.dispose()


@pytest.fixture
async def producer(probe_settings: ServiceSettings) -> AsyncIterator[KafkaProducer]:
    p = KafkaProducer(probe_settings)
    await p.start()
    yield p
    await p.stop()


