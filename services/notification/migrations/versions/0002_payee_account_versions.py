"""Notification: every masked account version the registry sent, so a transfer's message names its own account.

Revision ID: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "payee_account",
        sa.Column("person_ref", sa.String(64), primary_key=True),
        sa.Column("account_version", sa.Integer, primary_key=True),
        sa.Column("account_masked", sa.String(32), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("payee_account")
