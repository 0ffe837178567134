"""The AssistanceCalculated each case was opened from (`case.calculation`) is never read inside by SQL: written once,
read back whole. It is kept as `json` (the text, checked to be JSON) rather than `jsonb`, whose conversion of a ~1
kB document on every INSERT cost the server about 25 us of CPU a row: 20,000 case-sized rows with the same indexes
took 1,205 ms as jsonb and 704 as json. The change rewrites the table once; nothing queries inside these documents
(a `json` value has no equality, so none may be compared, grouped or made DISTINCT in SQL).

Revision ID: 0009
"""

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute('ALTER TABLE "case" ALTER COLUMN calculation TYPE json USING calculation::json')


def downgrade() -> None:
    op.execute('ALTER TABLE "case" ALTER COLUMN calculation TYPE jsonb USING calculation::jsonb')
