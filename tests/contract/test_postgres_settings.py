"""The PostgreSQL settings of the local stack, docker-compose.yml and the Helm chart tell the same story
(docs/decisions/0047), and none of them turns a durability guarantee off."""

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
DURABILITY = ("synchronous_commit", "fsync", "full_page_writes")


def local() -> dict[str, str]:
    """name -> value of deploy/local/postgres.conf (comments and blank lines left out)."""
    text = (ROOT / "deploy/local/postgres.conf").read_text()
    pairs = (line.split("#", 1)[0].split("=", 1) for line in text.splitlines() if line.split("#", 1)[0].strip())
    return {name.strip(): value.strip().strip("'") for name, value in pairs}


def compose() -> dict[str, str]:
    command = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]["postgres"]["command"]
    assert command[0] == "postgres"
    flags = command[1:]
    assert flags[::2] == ["-c"] * (len(flags) // 2)
    return dict(flag.split("=", 1) for flag in flags[1::2])


def chart() -> dict[str, str]:
    values = yaml.safe_load((ROOT / "deploy/k8s/medassist/values.yaml").read_text())["postgres"]
    return {name: str(value) for name, value in values["parameters"].items()}


def test_the_three_places_carry_the_same_settings() -> None:
    assert local()
    assert compose() == local()
    assert chart() == local()


def test_no_durability_setting_is_touched() -> None:
    for settings in (local(), compose(), chart()):
        assert not set(DURABILITY) & set(settings)


def test_shared_buffers_fit_the_database_pods() -> None:
    def megabytes(size: str) -> int:
        number, unit = re.fullmatch(r"(\d+)\s*([MG])i?B?", size).groups()  # type: ignore[union-attr]
        return int(number) * (1024 if unit == "G" else 1)

    limits = yaml.safe_load((ROOT / "deploy/k8s/medassist/values.yaml").read_text())["postgres"]["resources"]
    assert megabytes(chart()["shared_buffers"]) * 4 <= megabytes(limits["limits"]["memory"])


def test_postgres_sh_installs_the_file_and_includes_it_last() -> None:
    """An existing cluster gets the file at its next `up`: copied, and included once after initdb's block."""
    script = (ROOT / "deploy/local/postgres.sh").read_text()
    assert 'cp "$ROOT_DIR/deploy/local/postgres.conf" "$conf"' in script
    assert "include_if_exists = 'medassist.conf'" in script
    assert "shared_buffers" not in script  # the file says it, nothing before it

