"""The ops page counts journey steps per hour: an index on when each step happened.

Revision ID: 0004
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_journey_step_at", "journey_step", ["at"])


def downgrade() -> None:
    op.drop_index("ix_journey_step_at", "journey_step")
