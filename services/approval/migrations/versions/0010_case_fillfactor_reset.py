"""Case pages are packed full again (fillfactor reset to 100): 0007 left 30 % of each page free so that the
payment_status update would be HOT, but the bench did not show it. In a run of 5,944 cases, 3,383 of the 5,944
payment updates were HOT at fillfactor 100 and 3,352 at 70, and the table's pages held 2.7 rows each at 70
(ADR 0041). Free room that buys nothing only makes the table and every scan of it larger.

Revision ID: 0010
"""

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute('ALTER TABLE "case" RESET (fillfactor)')


def downgrade() -> None:
    op.execute('ALTER TABLE "case" SET (fillfactor = 70)')
