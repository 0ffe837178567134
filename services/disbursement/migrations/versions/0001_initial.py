"""Disbursement: payees, payments, attempts, outbox and inbox.

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
    op.create_table(
        "payee",
        sa.Column("person_ref", sa.String(64), primary_key=True),
        sa.Column("payee_ciphertext", sa.Text, nullable=False),
        sa.Column("account_version", sa.Integer, nullable=False),
        sa.Column("account_masked", sa.String(32), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    )
    op.create_table(
        "payment",
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("case_id", sa.Uuid, nullable=False, unique=True),
        sa.Column("calculation_id", sa.Uuid, nullable=False),
        sa.Column("settlement_id", sa.Uuid, nullable=False),
        sa.Column("person_ref", sa.String(64), nullable=False, index=True),
        sa.Column("district_code", sa.String(12), nullable=False),
        sa.Column("amount", sa.Numeric(14, 2), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column("idempotency_key", sa.String(64), nullable=False, unique=True),
        sa.Column("account_version", sa.Integer),
        sa.Column("bank_reference", sa.String(64)),
        sa.Column("failure_reason", sa.String(64)),
        sa.Column("approved_on", sa.Date, nullable=False),
        sa.Column("traceparent", sa.String(64)),
        sa.Column("approved_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("amount > 0", name="ck_payment_amount_positive"),
    )
    op.create_index("ix_payment_due", "payment", ["next_attempt_at"], postgresql_where=sa.text("status = 'pending'"))
    op.create_index("ix_payment_status", "payment", ["status", "updated_at"])
    op.create_index("ix_payment_reconciliation", "payment", ["approved_on", "district_code"])
    op.create_table(
        "payment_attempt",
        sa.Column("idempotency_key", sa.String(64), primary_key=True),
        sa.Column("payment_id", sa.Uuid, nullable=False, index=True),
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column("account_version", sa.Integer),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("reason", sa.String(64)),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.UniqueConstraint("payment_id", "attempt", name="uq_payment_attempt"),
    )


def downgrade() -> None:
    for table in ("payment_attempt", "payment", "payee", "inbox", "outbox"):
        op.drop_table(table)
