"""The outbox and inbox tables every service database has (created by each service's first migration, changed by
later ones: shared.migrations; shared/tests/integration/test_messaging_schema.py compares this model with each
service's migrated database)."""

from datetime import datetime
from uuid import UUID

from sqlalchemy import JSON, BigInteger, Column, DateTime, Identity, Index, LargeBinary, String, Table, func
from sqlmodel import Field, SQLModel


class OutboxMessage(SQLModel, table=True):
    """An event written in the same transaction as the state change it describes; the relay publishes it and
    deletes it in one transaction, so every row is an event not yet known to be published (read in `id` order).

    `event_id` has no index (ADR 0043): nothing looks a row up by it, and a row lives only until it is published,
    so a unique index there could not stop an event going out twice anyway (the consumers' inbox does that).
    `headers` (the trace context) is written once and read back whole: `json`, not `jsonb` (ADR 0041)."""

    __tablename__ = "outbox"

    id: int | None = Field(default=None, sa_column=Column(BigInteger, Identity(), primary_key=True))
    event_id: UUID = Field(nullable=False)
    topic: str = Field(sa_column=Column(String(128), nullable=False))
    key: str = Field(sa_column=Column(String(128), nullable=False))
    payload: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    headers: dict[str, str] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    created_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=False, server_default=func.now())
    )


class InboxEntry(SQLModel, table=True):
    """An event a consumer group has applied; the primary key makes a redelivery a no-op.

    `received_at` is only read by the purge of entries older than a week: a BRIN index (rows arrive in time
    order) finds them, where a B-tree cost a WAL record and an index entry per claimed event (ADR 0043)."""

    __tablename__ = "inbox"
    __table_args__ = (Index("ix_inbox_received_at", "received_at", postgresql_using="brin"),)

    consumer: str = Field(sa_column=Column(String(128), primary_key=True))
    event_id: UUID = Field(primary_key=True)
    received_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=False, server_default=func.now())
    )


# The Core tables: bulk writes on the hot path go through them (half the CPU of the ORM's bulk insert path).
OUTBOX_TABLE: Table = SQLModel.metadata.tables[OutboxMessage.__tablename__]
INBOX_TABLE: Table = SQLModel.metadata.tables[InboxEntry.__tablename__]
MESSAGING_TABLES = [OUTBOX_TABLE, INBOX_TABLE]
