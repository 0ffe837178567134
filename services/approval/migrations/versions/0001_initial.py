"""Approval: cases and an append-only audit trail, outbox and inbox.

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


def upgrade() -> None:
    create_messaging_tables()
    op.create_table(
        "case",
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("calculation_id", sa.Uuid, nullable=False, unique=True),
        sa.Column("settlement_id", sa.Uuid, nullable=False),
        sa.Column("person_ref", sa.String(64), nullable=False),
        sa.Column("hospital_id", sa.String(32), nullable=False),
        sa.Column("district_code", sa.String(12), nullable=False),
        sa.Column("subdistrict_code", sa.String(12), nullable=False),
        sa.Column("category", sa.String(32), nullable=False),
        sa.Column("discharge_date", sa.Date, nullable=False),
        sa.Column("amount", sa.Numeric(14, 2), nullable=False),
        sa.Column("state", sa.String(32), nullable=False),
        sa.Column("payment_status", sa.String(32)),
        sa.Column("calculation", JSONB, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    )
    op.create_index("ix_case_queue", "case", ["subdistrict_code", "state", "created_at"])
    op.create_index("ix_case_district", "case", ["district_code", "state", "created_at"])
    op.create_table(
        "case_audit",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("case_id", sa.Uuid, nullable=False, index=True),
        sa.Column("actor", sa.String(64), nullable=False),
        sa.Column("role", sa.String(32), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("from_state", sa.String(32)),
        sa.Column("to_state", sa.String(32), nullable=False),
        sa.Column("reason", sa.String(64)),
        sa.Column("comment", sa.String(500)),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    )
    # Append-only whatever role connects: the service's own role cannot rewrite history either.
    op.execute("""
        CREATE FUNCTION case_audit_is_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
          RAISE EXCEPTION 'case_audit is append-only' USING ERRCODE = 'insufficient_privilege';
        END $$;
    """)
    op.execute("""
        CREATE TRIGGER case_audit_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON case_audit
        FOR EACH STATEMENT EXECUTE FUNCTION case_audit_is_append_only();
    """)


def downgrade() -> None:
    op.execute("DROP TRIGGER case_audit_append_only ON case_audit")
    op.execute("DROP FUNCTION case_audit_is_append_only()")
    for table in ("case_audit", "case", "inbox", "outbox"):
        op.drop_table(table)
