"""Intake: settlements, their journey, request nonces, outbox and inbox.

Revision ID: 0001
"""

import sqlalchemy as sa
from alembic import op

from shared.migrations import create_messaging_tables

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_messaging_tables()
    money = lambda name, nullable=False: sa.Column(name, sa.Numeric(14, 2), nullable=nullable)  # noqa: E731
    op.create_table(
        "settlement",
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("hospital_id", sa.String(32), nullable=False),
        sa.Column("hospital_settlement_id", sa.String(64), nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("person_ref", sa.String(64), nullable=False, index=True),
        sa.Column("national_id_enc", sa.Text, nullable=False),
        sa.Column("name_enc", sa.Text, nullable=False),
        sa.Column("hospital_level", sa.SmallInteger, nullable=False),
        sa.Column("visit_type", sa.String(32), nullable=False),
        sa.Column("admission_date", sa.Date, nullable=False),
        sa.Column("discharge_date", sa.Date, nullable=False),
        money("total_amount"),
        money("policy_scope_amount"),
        money("basic_insurance_paid"),
        money("critical_illness_paid"),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("status_reason", sa.String(64)),
        money("assistance", nullable=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.UniqueConstraint("hospital_id", "hospital_settlement_id", name="uq_settlement_hospital_id"),
    )
    op.create_index("ix_settlement_hospital_status", "settlement", ["hospital_id", "status"])
    op.create_table(
        "journey_step",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("settlement_id", sa.Uuid, nullable=False, index=True),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("reason", sa.String(64)),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    )
    op.create_table(
        "request_nonce",
        sa.Column("hospital_id", sa.String(32), primary_key=True),
        sa.Column("signature", sa.String(64), primary_key=True),
        sa.Column("seen_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    )


def downgrade() -> None:
    for table in ("request_nonce", "journey_step", "settlement", "inbox", "outbox"):
        op.drop_table(table)
