"""The consent lookback comes from the region's policy: published versions' terms (policy.published), and each
screening records which lookback applied and from which version.

Revision ID: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "policy_terms",
        sa.Column("policy_id", sa.String(64), primary_key=True),
        sa.Column("version", sa.Integer, primary_key=True),
        sa.Column("region_code", sa.String(12), nullable=False, index=True),
        sa.Column("effective_from", sa.Date, nullable=False),
        sa.Column("effective_to", sa.Date),
        sa.Column("consent_lookback", sa.String(16), nullable=False),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.add_column("screening", sa.Column("consent_lookback", sa.String(16)))
    op.add_column("screening", sa.Column("lookback_policy_id", sa.String(64)))
    op.add_column("screening", sa.Column("lookback_policy_version", sa.Integer))


def downgrade() -> None:
    for column in ("lookback_policy_version", "lookback_policy_id", "consent_lookback"):
        op.drop_column("screening", column)
    op.drop_table("policy_terms")
