"""The outbox and inbox write less per event (ADR 0043): no unique index on outbox.event_id, outbox.headers as
json, a BRIN index on inbox.received_at instead of a B-tree.

Revision ID: 0008
"""

from shared.migrations import lighten_messaging_tables, unlighten_messaging_tables

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    lighten_messaging_tables()


def downgrade() -> None:
    unlighten_messaging_tables()
