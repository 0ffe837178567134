"""Reads of decrypted personal data are audited: who read which person's what, when, and why.

Every endpoint that decrypts a national ID, a name, a phone number or a bank account for a reader (even to
show it masked) calls `record_reads` in the transaction that reads the data, so the audit row and the answer
stand or fall together. The table is append-only: the runtime role may insert and select, never change it,
and a trigger refuses changes from any role (`shared.migrations.create_read_audit_table`).
"""

import re
from collections.abc import Iterable, Sequence

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from shared.security.staff_auth import Principal

READ_AUDIT_TABLE_NAME = "personal_data_read"
_PURPOSE = re.compile(r"[a-z][a-z0-9_]{0,47}")
FIELDS = frozenset({"national_id", "name", "phone", "bank_account"})



def read_audit_columns() -> list[sa.Column[object]]:
    """The table's columns (new objects each call: the table below and a migration each need their own)."""
    return [
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("actor", sa.String(64), nullable=False),
        sa.Column("role", sa.String(32), nullable=False),
        sa.Column("person_ref", sa.String(64), nullable=False),
        sa.Column("purpose", sa.String(48), nullable=False),
        sa.Column("fields", sa.String(128), nullable=False),
    ]


READ_AUDIT = sa.Table(READ_AUDIT_TABLE_NAME, sa.MetaData(), *read_audit_columns())


async def record_reads(session: AsyncSession, reader: Principal, purpose: str, person_refs: Iterable[str],
                       fields: Sequence[str]) -> int:
    """Append one audit row per person whose `fields` were decrypted for `reader`; returns how many.

    `purpose` is a stable code saying why (`person_lookup`, `case_review`, ...); `fields` are among FIELDS.
    One statement for all persons of the request, in the caller's transaction.
    """
    if not _PURPOSE.fullmatch(purpose):
        raise ValueError(f"a purpose is a short snake_case code, not {purpose!r}")
    unknown = set(fields) - FIELDS
    if not fields or unknown:
        raise ValueError(f"fields must be among {sorted(FIELDS)}")
    what = ",".join(sorted(set(fields)))
    rows = [{"actor": reader.subject, "role": reader.role.value, "person_ref": ref, "purpose": purpose,
             "fields": what} for ref in dict.fromkeys(person_refs)]
    if rows:
        await session.execute(sa.insert(READ_AUDIT), rows)
    return len(rows)

