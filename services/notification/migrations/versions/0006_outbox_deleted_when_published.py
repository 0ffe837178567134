"""The outbox relay deletes the rows it published in its own transaction (shared.messaging.outbox): no
published_at, no partial index of unpublished rows, no purge of published rows.

Revision ID: 0006
"""

from shared.migrations import delete_published_outbox_rows, mark_published_outbox_rows

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    delete_published_outbox_rows()


def downgrade() -> None:
    mark_published_outbox_rows()
