"""Each service's migrations form one line: two helpers numbering a migration alike (two heads) would stop the
service at start-up ("Multiple head revisions"), so it is caught here, before anything runs."""

from pathlib import Path

import pytest
from alembic.script import ScriptDirectory

ROOT = Path(__file__).resolve().parents[2]
HISTORIES = sorted(p.parent for p in ROOT.glob("services/*/migrations/versions"))


@pytest.mark.parametrize("migrations", HISTORIES, ids=[p.parent.name for p in HISTORIES])
def test_one_head_per_service(migrations: Path) -> None:
    heads = ScriptDirectory(str(migrations)).get_heads()
    assert len(heads) == 1, f"{migrations}: heads {heads}; renumber the later one onto the other"
