"""Notification: the resident view keeps each settlement's district too, so a counter clerk's lookup is confined
by the one area rule (district and sub-district, shared.security.area) like every other read.

Rows from before are given the district their sub-district code begins with (a token's sub-district must begin
with its district: shared.security.staff_auth).

Revision ID: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("resident_settlement", sa.Column("district_code", sa.String(12)))
    op.execute("UPDATE resident_settlement SET district_code = left(subdistrict_code, 6) "
               "WHERE subdistrict_code IS NOT NULL")


def downgrade() -> None:
    op.drop_column("resident_settlement", "district_code")
