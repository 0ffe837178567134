"""Disbursement: what the bank said per attempt (when sent, last asked, its reference, the account sent to),
alarms with their recovery amounts, and the bank statements' entries as matched.

Revision ID: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("payment_attempt", sa.Column("sent_at", sa.DateTime(timezone=True)))
    op.add_column("payment_attempt", sa.Column("checked_at", sa.DateTime(timezone=True)))
    op.add_column("payment_attempt", sa.Column("bank_reference", sa.String(64)))
    op.add_column("payment_attempt", sa.Column("account_fingerprint", sa.String(64)))
    op.add_column("payment_attempt", sa.Column("settled_at", sa.DateTime(timezone=True)))
    # The resolver's work list: attempts the bank may hold, oldest question first.
    op.create_index("ix_attempt_unresolved", "payment_attempt", [sa.text("coalesce(checked_at, sent_at)")],
                    postgresql_where=sa.text("status IN ('unknown', 'accepted')"))
    op.create_table(
        "payment_alarm",
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("subject", sa.String(96), nullable=False),  # what the alarm is about: a key or a bank entry
        sa.Column("idempotency_key", sa.String(64)),
        sa.Column("payment_id", sa.Uuid),
        sa.Column("case_id", sa.Uuid),
        sa.Column("district_code", sa.String(12)),
        sa.Column("amount", sa.Numeric(14, 2)),
        sa.Column("recovery_amount", sa.Numeric(14, 2)),
        sa.Column("bank_reference", sa.String(64)),
        sa.Column("detail", sa.String(200), nullable=False),
        sa.Column("raised_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("kind", "subject", name="uq_payment_alarm"),
    )
    op.create_index("ix_payment_alarm_raised", "payment_alarm", ["raised_at"])
    op.create_table(
        "statement_entry",
        sa.Column("entry_reference", sa.String(64), primary_key=True),
        sa.Column("idempotency_key", sa.String(64), nullable=False, index=True),
        sa.Column("booked_on", sa.Date, nullable=False, index=True),
        sa.Column("amount", sa.Numeric(14, 2), nullable=False),
        sa.Column("account_fingerprint", sa.String(64), nullable=False),
        sa.Column("payment_id", sa.Uuid),
        sa.Column("matched_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("position", sa.Integer, nullable=False),  # its place in the statement: the bank's order
    )
    op.create_table(
        "statement_run",
        sa.Column("booked_on", sa.Date, primary_key=True),
        sa.Column("entries", sa.Integer, nullable=False),
        sa.Column("alarms", sa.Integer, nullable=False),
        sa.Column("ran_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    for table in ("statement_run", "statement_entry", "payment_alarm"):
        op.drop_table(table)
    op.drop_index("ix_attempt_unresolved", "payment_attempt")
    for column in ("settled_at", "account_fingerprint", "bank_reference", "checked_at", "sent_at"):
        op.drop_column("payment_attempt", column)
