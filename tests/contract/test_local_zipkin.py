"""The local Zipkin (deploy/local/zipkin.sh) listens on loopback only, keeps traces in memory, and collects
nothing from Kafka even though env.sh exports KAFKA_BOOTSTRAP_SERVERS (Zipkin would read it as a collector)."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_zipkin_runs_on_loopback_in_memory_with_a_clean_environment() -> None:
    script = (ROOT / "deploy/local/zipkin.sh").read_text()
    assert '"--armeria.ports[0].ip=127.0.0.1"' in script
    assert "env -i " in script and "STORAGE_TYPE=mem" in script
    env = (ROOT / "deploy/local/env.sh").read_text()
    assert 'export ZIPKIN_PORT="${ZIPKIN_PORT:-9411}"' in env
    compose = (ROOT / "docker-compose.yml").read_text()
    assert 'image: openzipkin/zipkin:3.5.1' in compose and '"127.0.0.1:9411:9411"' in compose
    assert 'export ZIPKIN_VERSION="${ZIPKIN_VERSION:-3.5.1}"' in env, "compose and the local stack run one release"
