"""The optional local Jaeger (deploy/local/jaeger.yaml) listens on loopback only, on the ports env.sh names."""

import re
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]


def endpoints(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [v for k, v in node.items() if k == "endpoint" and isinstance(v, str)]
        return found + [e for v in node.values() for e in endpoints(v)]
    if isinstance(node, list):
        return [e for v in node for e in endpoints(v)]
    return []


def test_every_listener_is_on_loopback_and_configurable() -> None:
    config = yaml.safe_load((ROOT / "deploy/local/jaeger.yaml").read_text())
    listeners = endpoints(config)
    assert len(listeners) == 3
    env = (ROOT / "deploy/local/env.sh").read_text()
    for endpoint in listeners:
        match = re.fullmatch(r"127\.0\.0\.1:\$\{env:(JAEGER_\w+):-(\d+)\}", endpoint)
        assert match, endpoint
        assert f'export {match[1]}="${{{match[1]}:-{match[2]}}}"' in env, f"{match[1]} default differs from env.sh"
    assert config["service"]["telemetry"]["metrics"]["level"] == "none"  # no metrics listener of Jaeger's own
    assert set(config["receivers"]["otlp"]["protocols"]) == {"http"}
