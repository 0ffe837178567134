"""The reviewer's case view: the registry's entry per person, the person's calculations per year, payment
failures per case.

Revision ID: 0006
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("case", sa.Column("payment_failures", sa.Integer, nullable=False, server_default="0"))
    op.create_index("ix_case_person", "case", ["person_ref"])
    op.create_table(
        "person_view",
        sa.Column("person_ref", sa.String(64), primary_key=True),
        sa.Column("identity_enc", sa.Text, nullable=False),
        sa.Column("district_code", sa.String(12), nullable=False),
        sa.Column("subdistrict_code", sa.String(12), nullable=False),
        sa.Column("periods", JSONB, nullable=False),
        sa.Column("consents", JSONB, nullable=False),
        sa.Column("account_version", sa.Integer, nullable=False),
        sa.Column("account_changed_at", sa.DateTime(timezone=True)),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "person_calculation",
        sa.Column("calculation_id", sa.Uuid, primary_key=True),
        sa.Column("settlement_id", sa.Uuid, nullable=False),
        sa.Column("person_ref", sa.String(64), nullable=False),
        sa.Column("year", sa.Integer, nullable=False),
        sa.Column("hospital_id", sa.String(32), nullable=False),
        sa.Column("hospital_settlement_id", sa.String(64)),
        sa.Column("discharge_date", sa.Date, nullable=False),
        sa.Column("deductible_applied", sa.Numeric(14, 2), nullable=False),
        sa.Column("assistance", sa.Numeric(14, 2), nullable=False),
        sa.Column("deductible", sa.Numeric(14, 2), nullable=False),
        sa.Column("cap", sa.Numeric(14, 2), nullable=False),
        sa.Column("released", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    )
    op.create_index("ix_person_calculation_year", "person_calculation", ["person_ref", "year"])


def downgrade() -> None:
    for table in ("person_calculation", "person_view"):
        op.drop_table(table)
    op.drop_index("ix_case_person", "case")
    op.drop_column("case", "payment_failures")
