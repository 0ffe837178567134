"""Approval: the append-only audit of reads of decrypted personal data (shared.security.read_audit).

Revision ID: 0003
"""

from shared.migrations import create_read_audit_table, drop_read_audit_table

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_read_audit_table()


def downgrade() -> None:
    drop_read_audit_table()
