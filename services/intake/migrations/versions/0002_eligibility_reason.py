"""A settlement keeps its eligibility reason after later steps (calculated, approved, paid) replace its status.

Revision ID: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("settlement", sa.Column("eligibility_reason", sa.String(64)))
    # From the journey: the reason of each settlement's latest screening step.
    op.execute("""
        UPDATE settlement s SET eligibility_reason = last.reason
        FROM (SELECT DISTINCT ON (settlement_id) settlement_id, reason FROM journey_step
              WHERE status IN ('eligible', 'parked') ORDER BY settlement_id, id DESC) AS last
        WHERE s.id = last.settlement_id
    """)


def downgrade() -> None:
    op.drop_column("settlement", "eligibility_reason")
