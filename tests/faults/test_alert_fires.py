"""An alert seen firing in a real run: a poison message dead-lettered by eligibility fires DeadLetters.

Prometheus is Debian's, started by the same script as `make metrics`, with the project's alert rules, scraping
a real eligibility process every second; the alert is read from Prometheus' HTTP API.
"""

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from eligibility.bootstrap import MIGRATIONS
from eligibility.config import EligibilitySettings
from simulators.scenario import wait_for

from shared.contracts.topics import SETTLEMENT_RECEIVED
from shared.messaging.kafka import KafkaProducer
from shared.testing import ROOT, ServiceProcess, free_port, start_service, unique_prefix

pytestmark = pytest.mark.e2e


@pytest.fixture
async def eligibility() -> Any:
    settings = EligibilitySettings(topic_prefix=unique_prefix("alert"), database_name="test_alert_eligibility")
    process = await start_service("eligibility", settings, MIGRATIONS)
    try:
        yield settings, process
    finally:
        process.stop()


@pytest.fixture
def prometheus(eligibility: tuple[EligibilitySettings, ServiceProcess], tmp_path: Path) -> Iterator[str]:
    _, process = eligibility
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(ROOT / "deploy/prometheus/rules.yml")],
        "scrape_configs": [{"job_name": "medassist", "static_configs": [
            {"targets": [f"127.0.0.1:{process.port}"], "labels": {"service": "eligibility"}}]}],
    }
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    env = {**os.environ, "PROMETHEUS_CONFIG": str(tmp_path / "prometheus.yml"),
           "PROMETHEUS_PORT": str(free_port()), "MEDASSIST_RUN_DIR": str(tmp_path / "run")}
    script = str(ROOT / "deploy/local/prometheus.sh")
    subprocess.run(["bash", script, "up"], env=env, check=True, timeout=180)
    try:
        yield f"http://127.0.0.1:{env['PROMETHEUS_PORT']}"
    finally:
        subprocess.run(["bash", script, "stop"], env=env, check=False, timeout=60)


async def test_a_dead_letter_fires_the_dead_letters_alert(
        eligibility: tuple[EligibilitySettings, ServiceProcess], prometheus: str) -> None:
    settings, _ = eligibility
    async with httpx.AsyncClient(base_url=prometheus, timeout=5) as api:
        async def scraped() -> bool:
            result = (await api.get("/api/v1/query", params={"query": 'up{job="medassist"}'})).json()
            return [r["value"][1] for r in result["data"]["result"]] == ["1"]

        await wait_for(scraped, 60, "Prometheus to scrape eligibility", every=0.5)
        assert not [a for a in (await api.get("/api/v1/alerts")).json()["data"]["alerts"]
                    if a["labels"]["alertname"] == "DeadLetters"], "no alert before the poison message"

        producer = KafkaProducer(settings)
        await producer.start()
        try:
            await producer.send_and_wait(settings.topic(SETTLEMENT_RECEIVED), b"{not an event", key="poison")
        finally:
            await producer.stop()

        firing: list[dict[str, Any]] = []

        async def fired() -> bool:
            nonlocal firing
            alerts = (await api.get("/api/v1/alerts")).json()["data"]["alerts"]
            firing = [a for a in alerts if a["labels"]["alertname"] == "DeadLetters" and a["state"] == "firing"]
            return bool(firing)

        seconds = await wait_for(fired, 120, "the DeadLetters alert to fire", every=0.5)
    [alert] = firing
    print(f"\nDeadLetters firing {seconds:.1f}s after the poison message: {alert['labels']} "
          f"{alert['annotations']['summary']!r}")
    assert alert["labels"] | {"service": "eligibility", "topic": SETTLEMENT_RECEIVED} == alert["labels"]
    assert alert["labels"]["severity"] == "critical"
