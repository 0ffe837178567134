"""Notification: contacts, messages, the resident view, outbox and inbox.

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
        "recipient",
        sa.Column("person_ref", sa.String(64), primary_key=True),
        sa.Column("contact_version", sa.Integer, nullable=False),
        sa.Column("phone_ciphertext", sa.Text),
        sa.Column("phone_masked", sa.String(16)),
        sa.Column("sms_opt_out", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("account_masked", sa.String(32)),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    )
    op.create_table(
        "message",
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("seq", sa.BigInteger, sa.Identity(), nullable=False, unique=True),
        sa.Column("event_id", sa.Uuid, nullable=False),
        sa.Column("person_ref", sa.String(64), nullable=False, index=True),
        sa.Column("settlement_id", sa.Uuid),
        sa.Column("moment", sa.String(32), nullable=False),
        sa.Column("template_version", sa.Integer, nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("not_before", sa.DateTime(timezone=True), nullable=False),
        sa.Column("gateway_id", sa.String(64)),
        sa.Column("failure_reason", sa.String(64)),
        sa.Column("traceparent", sa.String(64)),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True)),
        sa.Column("delivered_at", sa.DateTime(timezone=True)),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_message_due", "message", ["not_before"], postgresql_where=sa.text("status = 'pending'"))
    op.create_index("ix_message_status", "message", ["status", "updated_at"])
    op.create_index("ix_message_person_order", "message", ["person_ref", "occurred_at", "seq"])
    op.create_table(
        "resident_settlement",
        sa.Column("settlement_id", sa.Uuid, primary_key=True),
        sa.Column("person_ref", sa.String(64), nullable=False, index=True),
        sa.Column("hospital_id", sa.String(32)),
        sa.Column("visit_type", sa.String(32)),
        sa.Column("discharge_date", sa.Date),
        sa.Column("subdistrict_code", sa.String(12)),
        sa.Column("eligible", sa.Boolean),
        sa.Column("eligibility_reason", sa.String(32)),
        sa.Column("assistance", sa.Numeric(14, 2)),
        sa.Column("review_state", sa.String(32)),
        sa.Column("review_reason", sa.String(64)),
        sa.Column("payment_status", sa.String(16)),
        sa.Column("payment_reason", sa.String(64)),
        sa.Column("payment_attempt", sa.Integer),
        sa.Column("paid_amount", sa.Numeric(14, 2)),
        sa.Column("paid_on", sa.Date),
        sa.Column("reversed", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("recovery", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    for table in ("resident_settlement", "message", "recipient", "inbox", "outbox"):
        op.drop_table(table)
