"""Prometheus' config is valid and every alert rule passes its unit tests (`promtool test rules`)."""

import os
import re
import shutil
import subprocess
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
PROM = ROOT / "deploy/prometheus"
PROMTOOL = os.environ.get("PROMTOOL", "/usr/bin/promtool")
SERVICES = {"intake": 8001, "eligibility": 8002, "calculation": 8003, "approval": 8004, "disbursement": 8005}


def promtool(*args: str) -> str:
    assert shutil.which(PROMTOOL), f"{PROMTOOL} is missing: make up installs Debian's prometheus package"
    done = subprocess.run([PROMTOOL, *args], cwd=PROM, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_config_and_rules_are_valid() -> None:
    promtool("check", "config", "prometheus.yml")


def test_every_alert_passes_its_rule_tests() -> None:
    print(promtool("test", "rules", "rules.test.yml"))


def test_every_alert_is_tested_and_in_the_runbook() -> None:
    rules = yaml.safe_load((PROM / "rules.yml").read_text())
    alerts = {r["alert"] for g in rules["groups"] for r in g["rules"] if "alert" in r}
    tested = {t["alertname"] for case in yaml.safe_load((PROM / "rules.test.yml").read_text())["tests"]
              for t in case.get("alert_rule_test", [])}
    assert alerts == tested
    runbook = (ROOT / "docs/runbook.md").read_text()
    for alert in alerts:
        assert re.search(rf"^### {alert}$", runbook, re.M), f"docs/runbook.md has no section for {alert}"


def test_every_service_is_scraped_on_its_port() -> None:
    config = yaml.safe_load((PROM / "prometheus.yml").read_text())
    [job] = config["scrape_configs"]
    scraped = {c["labels"]["service"]: c["targets"] for c in job["static_configs"]}
    assert scraped == {name: [f"127.0.0.1:{port}"] for name, port in SERVICES.items()}
