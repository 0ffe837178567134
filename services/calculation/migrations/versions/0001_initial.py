"""Calculation: policies, ledgers, calculations, recoveries, outbox and inbox.

Revision ID: 0001
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

from shared.migrations import create_messaging_tables

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def _money(name: str) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(name, sa.Numeric(14, 2), nullable=False)


def upgrade() -> None:
    create_messaging_tables()
    op.create_table(
        "policy",
        sa.Column("policy_id", sa.String(64), primary_key=True),
        sa.Column("version", sa.Integer, primary_key=True),
        sa.Column("region_code", sa.String(12), nullable=False, index=True),
        sa.Column("effective_from", sa.Date, nullable=False),
        sa.Column("effective_to", sa.Date),
        sa.Column("document", JSONB, nullable=False),
        sa.Column("published_by", sa.String(64), nullable=False),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    )
    op.create_table(
        "ledger",
        sa.Column("person_ref", sa.String(64), primary_key=True),
        sa.Column("year", sa.Integer, primary_key=True),
        _money("deductible_used"),
        _money("committed"),
        sa.CheckConstraint("deductible_used >= 0 AND committed >= 0", name="ck_ledger_not_negative"),
    )
    op.create_table(
        "calculation",
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("settlement_id", sa.Uuid, nullable=False, unique=True),
        sa.Column("person_ref", sa.String(64), nullable=False, index=True),
        sa.Column("year", sa.Integer, nullable=False),
        sa.Column("category", sa.String(32), nullable=False),
        sa.Column("district_code", sa.String(12), nullable=False),
        sa.Column("subdistrict_code", sa.String(12), nullable=False),
        sa.Column("policy_id", sa.String(64)),
        sa.Column("policy_version", sa.Integer),
        _money("deductible_applied"),
        _money("assistance"),
        sa.Column("breakdown", JSONB, nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("released", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    )
    op.create_table(
        "recovery",
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("calculation_id", sa.Uuid, nullable=False, unique=True),
        sa.Column("settlement_id", sa.Uuid, nullable=False),
        sa.Column("person_ref", sa.String(64), nullable=False),
        sa.Column("district_code", sa.String(12), nullable=False, index=True),
        _money("amount"),
        sa.Column("status", sa.String(16), nullable=False, server_default="open"),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    )


def downgrade() -> None:
    for table in ("recovery", "calculation", "ledger", "policy", "inbox", "outbox"):
        op.drop_table(table)
