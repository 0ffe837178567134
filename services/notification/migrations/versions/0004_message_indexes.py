"""Notification: a message waits as `held` while its person has no phone number, and the message table keeps
only the indexes its queries use.

Before, such a message stayed `pending` forever, and every sender pass scanned all of them (the due index
and the join to the contacts) to send none: work that grew with every message written for a person without a
phone. Now `pending` means "can go": the due index holds only those, a partial index on `person_ref` finds a
person's held messages when a phone comes, and one on `updated_at` finds what a crash left `sending`.

Dropped: the index on `person_ref` alone (`ix_message_person_order` begins with it), the unique constraint on
`seq` (an identity column: nothing needs its uniqueness checked), and (status, updated_at), which served only
the `sending` look-up and the count of waiting messages (both partial now). Each message written costs three
index entries instead of six.

Pending messages of persons without a usable phone become `held` here, as the sender's sweep would.

Revision ID: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_message_person_ref", table_name="message")
    op.drop_index("ix_message_status", table_name="message")
    op.drop_constraint("message_seq_key", "message", type_="unique")
    op.create_index("ix_message_held", "message", ["person_ref"], postgresql_where=sa.text("status = 'held'"))
    op.create_index("ix_message_sending", "message", ["updated_at"], postgresql_where=sa.text("status = 'sending'"))
    op.execute("""
        UPDATE message m SET status = 'held' WHERE status = 'pending' AND NOT EXISTS (
            SELECT 1 FROM recipient c WHERE c.person_ref = m.person_ref AND c.phone_ciphertext IS NOT NULL)""")


def downgrade() -> None:
    op.execute("UPDATE message SET status = 'pending' WHERE status = 'held'")
    op.drop_index("ix_message_sending", table_name="message")
    op.drop_index("ix_message_held", table_name="message")
    op.create_unique_constraint("message_seq_key", "message", ["seq"])
    op.create_index("ix_message_status", "message", ["status", "updated_at"])
    op.create_index("ix_message_person_ref", "message", ["person_ref"])
