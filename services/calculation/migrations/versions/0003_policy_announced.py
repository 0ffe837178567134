"""Every policy version is announced once on policy.published (its terms, for eligibility); versions published
before are announced when the service next starts.

Revision ID: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("policy", sa.Column("announced_at", sa.DateTime(timezone=True)))


def downgrade() -> None:
    op.drop_column("policy", "announced_at")
