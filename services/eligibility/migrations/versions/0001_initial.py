"""Eligibility: registry, consents, screenings, outbox and inbox.

Revision ID: 0001
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

from shared.migrations import create_messaging_tables

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_messaging_tables()
    op.create_table(
        "person",
        sa.Column("person_ref", sa.String(64), primary_key=True),
        sa.Column("national_id_enc", sa.Text, nullable=False),
        sa.Column("name_enc", sa.Text, nullable=False),
        sa.Column("district_code", sa.String(12), nullable=False),
        sa.Column("subdistrict_code", sa.String(12), nullable=False),
        sa.Column("bank_account_enc", sa.Text),
        sa.Column("bank_account_fingerprint", sa.String(64)),
        sa.Column("account_masked", sa.String(32)),
        sa.Column("account_version", sa.Integer, nullable=False, server_default="0"),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    )
    op.create_table(
        "registry_period",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("person_ref", sa.String(64), nullable=False, index=True),
        sa.Column("category", sa.String(32), nullable=False),
        sa.Column("valid_from", sa.Date, nullable=False),
        sa.Column("valid_to", sa.Date),
        sa.UniqueConstraint("person_ref", "category", "valid_from", name="uq_registry_period"),
    )
    op.create_table(
        "consent",
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("person_ref", sa.String(64), nullable=False, index=True),
        sa.Column("signed_on", sa.Date, nullable=False),
        sa.Column("revoked_on", sa.Date),
        sa.Column("channel", sa.String(32), nullable=False),
        sa.Column("recorded_by", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    )
    op.create_table(
        "screening",
        sa.Column("settlement_id", sa.Uuid, primary_key=True),
        sa.Column("person_ref", sa.String(64), nullable=False, index=True),
        sa.Column("discharge_date", sa.Date, nullable=False),
        sa.Column("settlement", JSONB, nullable=False),
        sa.Column("eligible", sa.Boolean, nullable=False),
        sa.Column("reason", sa.String(32), nullable=False),
        sa.Column("category", sa.String(32)),
        sa.Column("parked", sa.Boolean, nullable=False),
        sa.Column("reversed", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    )
    op.create_index("ix_screening_parked", "screening", ["person_ref"], postgresql_where=sa.text("parked"))


def downgrade() -> None:
    for table in ("screening", "consent", "registry_period", "person", "inbox", "outbox"):
        op.drop_table(table)
