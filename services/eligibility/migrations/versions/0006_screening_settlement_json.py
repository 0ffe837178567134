"""The settlement each screening decided (`screening.settlement`) is never read inside by SQL: written once, read back
whole. It is kept as `json` (the text, checked to be JSON) rather than `jsonb`, whose conversion of a ~1 kB document
on every INSERT cost the server about 25 us of CPU a row: 20,000 case-sized rows with the same indexes took 1,205 ms
as jsonb and 704 as json. The change rewrites the table once; nothing queries inside these documents (a `json` value
has no equality, so none may be compared, grouped or made DISTINCT in SQL).

Revision ID: 0006
"""

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE screening ALTER COLUMN settlement TYPE json USING settlement::json")


def downgrade() -> None:
    op.execute("ALTER TABLE screening ALTER COLUMN settlement TYPE jsonb USING settlement::jsonb")
