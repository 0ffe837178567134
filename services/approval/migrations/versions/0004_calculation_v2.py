"""A case's calculation is stored as AssistanceCalculated version 2 (typed figures under one name each):
cases opened from version 1 are upcast in place, by the same upcaster consumers use.

Revision ID: 0004
"""

import json

import sqlalchemy as sa
from alembic import op

from shared.contracts.versions import upcast

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None
CHUNK = 1000


def _v2(stored: str) -> dict[str, object]:
    return upcast("AssistanceCalculated", 1, 2, json.loads(stored))


def upgrade() -> None:
    conn = op.get_bind()
    last = None
    while True:  # in chunks by id; a case already in version 2 (it has `figures`) is left alone
        after = "AND id > :last" if last is not None else ""
        rows = conn.execute(sa.text(
            "SELECT id, CAST(calculation AS text) AS calculation FROM \"case\" "
            f"WHERE NOT jsonb_exists(calculation, 'figures') {after} ORDER BY id LIMIT :n"),
            {"last": last, "n": CHUNK}).all()
        if not rows:
            break
        conn.execute(sa.text("UPDATE \"case\" SET calculation = CAST(CAST(:calculation AS text) AS jsonb) "
                             "WHERE id = :id"),
                     [{"id": r.id, "calculation": json.dumps(_v2(r.calculation))} for r in rows])
        last = rows[-1].id


def downgrade() -> None:
    pass  # version 2 keeps every figure of version 1; older code reading it is not supported
