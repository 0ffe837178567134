"""Eligibility: how to reach a person (phone, SMS opt-out) for notifications.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "contact",
        sa.Column("person_ref", sa.String(64), primary_key=True),
        sa.Column("phone_enc", sa.Text),
        sa.Column("phone_fingerprint", sa.String(64)),
        sa.Column("phone_masked", sa.String(16)),
        sa.Column("sms_opt_out", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("version", sa.Integer, nullable=False, server_default="0"),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    )
    op.add_column("consent", sa.Column("sms_opt_out", sa.Boolean, nullable=False, server_default=sa.false()))


def downgrade() -> None:
    op.drop_column("consent", "sms_opt_out")
    op.drop_table("contact")
