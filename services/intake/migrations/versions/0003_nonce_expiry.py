"""Intake: a request nonce is kept until its signed timestamp leaves the acceptance window.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Rows from before this migration are forgotten by their seen_at, as before (nullable for them).
    op.add_column("request_nonce", sa.Column("expires_at", sa.DateTime(timezone=True)))
    op.create_index("ix_request_nonce_expires_at", "request_nonce", ["expires_at"])


def downgrade() -> None:
    op.drop_index("ix_request_nonce_expires_at", "request_nonce")
    op.drop_column("request_nonce", "expires_at")
