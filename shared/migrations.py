"""Alembic per service: each service has `migrations/` whose env.py calls `run_env()`."""

import asyncio
from collections.abc import Sequence
from pathlib import Path

import sqlalchemy as sa
from alembic import command, context, op
from alembic.config import Config
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from shared.db import quote_ident
from shared.security.read_audit import READ_AUDIT_TABLE_NAME, read_audit_columns
from shared.settings import ServiceSettings

_MIGRATION_LOCK_KEY = 0x6D696772  # replicas starting together migrate one at a time


def upgrade_to_head(settings: ServiceSettings, migrations_dir: Path, revision: str = "head") -> None:
    """Apply every migration of a service (up to `revision`, for migration tests) as the database owner, then grant
    the runtime role its privileges.

    Synchronous: call before the event loop, or via to_thread.
    """
    config = Config()
    config.set_main_option("script_location", str(migrations_dir))
    config.attributes["database_url"] = settings.owner_database_url
    if settings.app_role != settings.pg_user:
        config.attributes["runtime_role"] = settings.app_role
    command.upgrade(config, revision)


def run_env(append_only: Sequence[str] = ()) -> None:
    """Body of every service's migrations/env.py (online mode, asyncpg).

    `append_only` names the tables the runtime role may read and insert into but never change.
    """
    url = context.config.attributes["database_url"]
    runtime_role = context.config.attributes.get("runtime_role")

    def migrate(connection: Connection) -> None:
        context.configure(connection=connection, target_metadata=None, compare_type=True)
        with context.begin_transaction():
            connection.execute(sa.text(f"SELECT pg_advisory_xact_lock({_MIGRATION_LOCK_KEY})"))
            context.run_migrations()
            if runtime_role:
                apply_runtime_grants(connection, runtime_role, append_only)

    async def main() -> None:
        engine = create_async_engine(url, poolclass=NullPool)
        try:
            async with engine.connect() as connection:
                await connection.run_sync(migrate)
        finally:
            await engine.dispose()

    asyncio.run(main())


def apply_runtime_grants(connection: Connection, role: str, append_only: Sequence[str] = ()) -> None:
    """Data privileges on every table of the schema for the runtime role: no DDL, no TRUNCATE, and no
    UPDATE or DELETE on the append-only tables. Idempotent; runs after every migration."""
    role = quote_ident(role)
    statements = [
        f"GRANT USAGE ON SCHEMA public TO {role}",
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {role}",
        f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {role}",
        *(f"REVOKE UPDATE, DELETE, TRUNCATE ON {quote_ident(t)} FROM {role}" for t in append_only),
    ]
    if connection.execute(sa.text("SELECT to_regclass('public.alembic_version')")).scalar() is not None:
        statements.append(f"REVOKE INSERT, UPDATE, DELETE ON alembic_version FROM {role}")
    for statement in statements:
        connection.execute(sa.text(statement))


def create_messaging_tables() -> None:
    """The outbox and inbox of shared.messaging.tables, for a service's first migration."""
    op.create_table(
        "outbox",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("event_id", sa.Uuid, nullable=False, unique=True),
        sa.Column("topic", sa.String(128), nullable=False),
        sa.Column("key", sa.String(128), nullable=False),
        sa.Column("payload", sa.LargeBinary, nullable=False),
        sa.Column("headers", JSONB, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("published_at", sa.DateTime(timezone=True)),
    )
    op.create_index("ix_outbox_unpublished", "outbox", ["id"], postgresql_where=sa.text("published_at IS NULL"))
    op.create_table(
        "inbox",
        sa.Column("consumer", sa.String(128), primary_key=True),
        sa.Column("event_id", sa.Uuid, primary_key=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    )
    op.create_index("ix_inbox_received_at", "inbox", ["received_at"])


def delete_published_outbox_rows() -> None:
    """The relay deletes what it published in its own transaction instead of marking it (published_at) for a
    later purge: the column and the partial index of unpublished rows go, the primary key orders the relay's
    reads. For one migration per service, after `create_messaging_tables`."""
    op.execute("DELETE FROM outbox WHERE published_at IS NOT NULL")
    op.drop_index("ix_outbox_unpublished", table_name="outbox")
    op.drop_column("outbox", "published_at")


def mark_published_outbox_rows() -> None:
    """The downgrade of `delete_published_outbox_rows`: every row left is unpublished."""
    op.add_column("outbox", sa.Column("published_at", sa.DateTime(timezone=True)))
    op.create_index("ix_outbox_unpublished", "outbox", ["id"], postgresql_where=sa.text("published_at IS NULL"))


def lighten_messaging_tables() -> None:
    """ADR 0043, for one migration per service, after `delete_published_outbox_rows`: the outbox loses its unique
    index on `event_id` (nothing looks a row up by it) and keeps its `headers` as `json`; the inbox's
    `received_at`, read only by the week-old purge, gets a BRIN index instead of a B-tree. Existing rows stay as
    they are (the headers are rewritten once, as the same JSON text)."""
    op.drop_constraint("outbox_event_id_key", "outbox", type_="unique")
    op.alter_column("outbox", "headers", type_=sa.JSON, postgresql_using="headers::json")
    op.drop_index("ix_inbox_received_at", table_name="inbox")
    op.create_index("ix_inbox_received_at", "inbox", ["received_at"], postgresql_using="brin")


def unlighten_messaging_tables() -> None:
    """The downgrade of `lighten_messaging_tables`."""
    op.drop_index("ix_inbox_received_at", table_name="inbox")
    op.create_index("ix_inbox_received_at", "inbox", ["received_at"])
    op.alter_column("outbox", "headers", type_=JSONB, postgresql_using="headers::jsonb")
    op.create_unique_constraint("outbox_event_id_key", "outbox", ["event_id"])


def create_append_only_trigger(table: str) -> None:
    """Refuse UPDATE, DELETE and TRUNCATE on `table` from any role, the owner included (for a migration)."""
    name = quote_ident(table)
    function = quote_ident(f"{table}_is_append_only")
    op.execute(f"""
        CREATE FUNCTION {function}() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
          RAISE EXCEPTION '{table} is append-only' USING ERRCODE = 'insufficient_privilege';
        END $$;
    """)
    op.execute(f"""
        CREATE TRIGGER {quote_ident(table + "_append_only")} BEFORE UPDATE OR DELETE OR TRUNCATE ON {name}
        FOR EACH STATEMENT EXECUTE FUNCTION {function}();
    """)


def create_read_audit_table() -> None:
    """The audit of personal-data reads (shared.security.read_audit), for a service's migration: the table, its
    index by person and the append-only trigger. List READ_AUDIT_TABLE_NAME in the service's
    `run_env(append_only=...)` too, so the runtime role is never granted UPDATE or DELETE on it."""
    op.create_table(READ_AUDIT_TABLE_NAME, *read_audit_columns())
    op.create_index("ix_personal_data_read_person", READ_AUDIT_TABLE_NAME, ["person_ref", "at"])
    create_append_only_trigger(READ_AUDIT_TABLE_NAME)


def drop_read_audit_table() -> None:
    """The downgrade of `create_read_audit_table`."""
    op.drop_table(READ_AUDIT_TABLE_NAME)
    op.execute(f"DROP FUNCTION {quote_ident(READ_AUDIT_TABLE_NAME + '_is_append_only')}()")
