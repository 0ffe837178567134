"""A case paid and then reversed by the hospital shows its recovery (state reversed_after_payment).

Revision ID: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("case", sa.Column("recovery_id", sa.Uuid))
    op.add_column("case", sa.Column("recovery_amount", sa.Numeric(14, 2)))
    op.add_column("case", sa.Column("recovery_opened_at", sa.DateTime(timezone=True)))


def downgrade() -> None:
    for column in ("recovery_opened_at", "recovery_amount", "recovery_id"):
        op.drop_column("case", column)
