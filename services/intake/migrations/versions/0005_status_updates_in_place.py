"""The status view rewrites a settlement in place: no index on its status, room on its page for the new version.

Every downstream event rewrites its settlement's status. While `status` was indexed, and every page was
filled to the brim by the inserts, none of those updates could be HOT: each wrote the whole row to a new
page and a new entry in all four indexes. Now:

- `ix_settlement_hospital_status` (hospital_id, status) gives way to (hospital_id, received_at), which the
  hospital's list (newest first, optionally by status) reads in its order; nothing updates those columns;
- `ix_settlement_person_ref` goes: no query reads settlements by person_ref;
- new pages are filled to half (fillfactor 50), so the status updates of a page's settlements fit beside
  them. Rows written before keep their pages until the table is rewritten (VACUUM FULL in a quiet hour).

Revision ID: 0005
"""

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_settlement_hospital_received", "settlement", ["hospital_id", "received_at"])
    op.drop_index("ix_settlement_hospital_status", "settlement")
    op.drop_index("ix_settlement_person_ref", "settlement")
    op.execute("ALTER TABLE settlement SET (fillfactor = 50)")


def downgrade() -> None:
    op.execute("ALTER TABLE settlement RESET (fillfactor)")
    op.create_index("ix_settlement_person_ref", "settlement", ["person_ref"])
    op.create_index("ix_settlement_hospital_status", "settlement", ["hospital_id", "status"])
    op.drop_index("ix_settlement_hospital_received", "settlement")
