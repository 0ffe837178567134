"""The repository's demo policies (loaded into the database on first start)."""

from pathlib import Path

from calculation.domain.policy import Policy

FOLDER = Path(__file__).resolve().parent


def load_policy_file(path: Path) -> Policy:
    return Policy.model_validate_json(path.read_text())


def demo_policies() -> list[Policy]:
    return [load_policy_file(p) for p in sorted(FOLDER.glob("*.json"))]
