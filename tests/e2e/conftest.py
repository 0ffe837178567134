"""Every service as its own process, on the real Kafka and PostgreSQL, isolated by topic prefix and databases."""

import os
from collections.abc import AsyncIterator, Iterator

import pytest
from simulators.scenario import Endpoints

from shared.settings import ServiceSettings
from shared.testing import OtlpReceiver, stack_available, start_services, unique_prefix


@pytest.fixture(scope="session")
def otlp() -> Iterator[OtlpReceiver]:
    receiver = OtlpReceiver()
    yield receiver
    receiver.stop()


@pytest.fixture(scope="session")
async def stack(otlp: OtlpReceiver) -> AsyncIterator[Endpoints]:
    prefix = unique_prefix("e2e")
    if not await stack_available(ServiceSettings()):
        pytest.fail("PostgreSQL is not reachable: run `make up` (make test does it for you)")
    # Two sessions sharing one PostgreSQL (several checkouts on one machine) each name their own databases.
    urls, processes = await start_services(
        prefix, os.environ.get("MEDASSIST_E2E_DB_PREFIX", "e2e"),
        env={"OTEL_EXPORTER_OTLP_ENDPOINT": otlp.url, "OTEL_BSP_SCHEDULE_DELAY": "200"},
        per_service={"bank": {"BANK_SIM_SETTLE_DELAY_MS": "30"},
                     "disbursement": {"BANK_TIMEOUT_S": "0.5", "POLL_AFTER_S": "1", "RESEND_BACKOFF_S": "0.5",
                                      "BANK_BACKOFF_INITIAL_S": "0.05", "BANK_BACKOFF_MAX_S": "0.2"}},
    )
    try:
        yield Endpoints(**urls, topic_prefix=prefix, logs=[p.log_path for p in processes])
    finally:
        for process in processes:
            process.stop()
