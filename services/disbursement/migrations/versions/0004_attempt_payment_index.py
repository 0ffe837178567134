"""Disbursement: drop `ix_payment_attempt_payment_id`. `uq_payment_attempt` (payment_id, attempt) leads with the
same column and serves every lookup of a payment's attempts (by `payment_id = ANY(...)`, and the console's one
payment in attempt order) as well; the second index only cost an entry on every attempt written and on every
update of one (each changes its status, which no update can keep HOT): three or four per payment.

Revision ID: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_payment_attempt_payment_id", "payment_attempt")


def downgrade() -> None:
    op.create_index("ix_payment_attempt_payment_id", "payment_attempt", [sa.text("payment_id")])
