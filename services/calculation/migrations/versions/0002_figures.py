"""A calculation's figures become one typed object under the names the event uses (AssistanceCalculated v2);
the settlement it was calculated from gets its own column instead of riding inside `breakdown`.

Revision ID: 0002
"""

import json

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

from shared.contracts.versions import figures_from_breakdown

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None
CHUNK = 1000


def upgrade() -> None:
    op.add_column("calculation", sa.Column("settlement", JSONB))
    op.add_column("calculation", sa.Column("figures", JSONB))
    conn = op.get_bind()
    last = None
    while True:  # in chunks by id, so a large table never sits in memory at once
        after = "" if last is None else "WHERE id > :last"
        rows = conn.execute(sa.text(f"SELECT id, CAST(breakdown AS text) AS breakdown FROM calculation {after} "
                                    "ORDER BY id LIMIT :n"), {"last": last, "n": CHUNK}).all()
        if not rows:
            break
        values = []
        for row in rows:
            breakdown = json.loads(row.breakdown)
            settlement = breakdown["settlement"]
            figures = figures_from_breakdown(breakdown, settlement) if "base" in breakdown else None
            values.append({"id": row.id, "settlement": json.dumps(settlement),
                           "figures": None if figures is None else json.dumps(figures)})
        conn.execute(sa.text("UPDATE calculation SET settlement = CAST(CAST(:settlement AS text) AS jsonb), "
                             "figures = CAST(CAST(:figures AS text) AS jsonb) WHERE id = :id"), values)
        last = rows[-1].id
    op.alter_column("calculation", "settlement", nullable=False)
    op.drop_column("calculation", "breakdown")


def downgrade() -> None:
    op.add_column("calculation", sa.Column("breakdown", JSONB))
    op.execute("""
        UPDATE calculation SET breakdown = jsonb_build_object('settlement', settlement) || CASE
          WHEN figures IS NULL THEN '{}'::jsonb ELSE jsonb_build_object(
            'year', year::text, 'category', category, 'policy_id', policy_id,
            'policy_version', policy_version::text, 'base', figures->'base', 'deductible', figures->'deductible',
            'deductible_used_before', figures->'deductible_used_before', 'ded_left', figures->'deductible_left',
            'ded_applied', figures->'deductible_applied', 'ratio', figures->'ratio',
            'amount_before_caps', figures->'amount_before_caps',
            'per_settlement_cap', COALESCE(figures->>'per_settlement_cap', ''),
            'amount_after_settlement_cap', figures->'amount_after_settlement_cap', 'cap', figures->'cap',
            'committed_before', figures->'committed_before', 'cap_left', figures->'cap_left',
            'assistance', figures->'assistance') END
    """)
    op.alter_column("calculation", "breakdown", nullable=False)
    op.drop_column("calculation", "figures")
    op.drop_column("calculation", "settlement")
