"""Case pages are filled to half (fillfactor 50), so that the bank's word on a case (`payment_status`, no index
on it) is a HOT update: no entry in the case's five indexes (ADR 0044).

0007 tried 70 and 0010 took it back (ADR 0041) because the bench showed no gain. What held the updates back: the
bank's words arrive in batches, and one UPDATE writes the new version of every case of the batch in one
transaction, so a page needs room for the new versions of all its cases at once (the old ones are not dead
until the batch commits, so pruning cannot make room). A case row is ~1.2 kB: at 70 a page holds four cases and
room for two or three new versions; at 50 three cases and room for all three. In an isolated test of 4,000
case-sized rows with the case's indexes, updated in batches of 100 in page order: fillfactor 100 made 0 of the
4,000 updates HOT, 70 made 3,000, 50 all 4,000, and the table after them was 1,143, 1,250 and 1,334 pages.
The setting applies to the pages written from now on; existing pages keep their rows as they are.

Revision ID: 0012
"""

from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute('ALTER TABLE "case" SET (fillfactor = 50)')


def downgrade() -> None:
    op.execute('ALTER TABLE "case" RESET (fillfactor)')
