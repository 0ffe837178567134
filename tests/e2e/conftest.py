"""Every service as its own process, on the real Kafka and PostgreSQL, isolated by topic prefix and databases."""

from collections.abc import AsyncIterator

import pytest

from shared.settings import ServiceSettings
from shared.testing import OtlpReceiver, ServiceProcess, free_port, prepare, stack_available, unique_prefix
from simulators.scenario import Endpoints

SERVICES = ("intake", "eligibility", "calculation", "approval", "disbursement")


@pytest.fixture(scope="session")
def otlp() -> "OtlpReceiver":
    receiver = OtlpReceiver()
    yield receiver  # type: ignore[misc]
    receiver.stop()


@pytest.fixture(scope="session")
async def stack(otlp: OtlpReceiver) -> AsyncIterator[Endpoints]:
    prefix = unique_prefix("e2e")
    probe = ServiceSettings(topic_prefix=prefix)
    if not await stack_available(probe):
        pytest.fail("PostgreSQL is not reachable: run `make up` (make test does it for you)")
    ports = {name: free_port() for name in (*SERVICES, "bank")}
    for name in SERVICES:
        await prepare(ServiceSettings(service_name=name, topic_prefix=prefix, database_name=f"e2e_{name}"))
    common = {"TOPIC_PREFIX": prefix, "OTEL_EXPORTER_OTLP_ENDPOINT": otlp.url, "OTEL_BSP_SCHEDULE_DELAY": "200"}
    processes = [ServiceProcess("simulators.bank", {"BANK_SIM_PORT": str(ports["bank"]),
                                                    "BANK_SIM_SETTLE_DELAY_MS": "30"}, ports["bank"])]
    for name in SERVICES:
        env = {**common, "DATABASE_NAME": f"e2e_{name}"}
        if name == "disbursement":
            env.update({"BANK_BASE_URL": f"http://127.0.0.1:{ports['bank']}",
                        "CALLBACK_BASE_URL": f"http://127.0.0.1:{ports['disbursement']}",
                        "BANK_TIMEOUT_S": "0.5", "POLL_AFTER_S": "1", "RESEND_BACKOFF_S": "0.5",
                        "BANK_BACKOFF_INITIAL_S": "0.05", "BANK_BACKOFF_MAX_S": "0.2"})
        processes.append(ServiceProcess(name, env, ports[name]))
    try:
        for process in processes:
            process.start()
        for process in processes:
            await process.wait_ready(120)
        yield Endpoints(**{name: f"http://127.0.0.1:{ports[name]}" for name in (*SERVICES, "bank")},
                        topic_prefix=prefix, logs=[p.log_path for p in processes])
    finally:
        for process in processes:
            process.stop()
