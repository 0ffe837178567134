"""Cases remember the settlement's trace, so a clerk's action continues it.

Revision ID: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("case", sa.Column("traceparent", sa.String(64)))


def downgrade() -> None:
    op.drop_column("case", "traceparent")
