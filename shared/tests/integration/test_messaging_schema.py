"""The outbox and inbox of shared.messaging.tables are what every service's migrations build: the model is what
the shared tests create their tables from, the migrations are what runs, so a change made to one only (an index
dropped in a migration and kept in the model, a column type) would test one schema and run another."""

import asyncio
import uuid
from pathlib import Path

import asyncpg
import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import MetaData
from sqlalchemy.dialects import postgresql
from sqlalchemy.schema import CreateIndex, CreateTable

from shared.db import ensure_database
from shared.messaging.tables import MESSAGING_TABLES
from shared.migrations import upgrade_to_head
from shared.settings import ServiceSettings

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[3]
SERVICES = sorted(p.parents[1].name for p in ROOT.glob("services/*/migrations/versions"))

# Columns (type, not null, default, identity), constraints and index definitions of a table in a schema.
_COLUMNS = """SELECT a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull, a.attidentity,
                     pg_get_expr(d.adbin, d.adrelid)
              FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
              WHERE a.attrelid = format('%I.%I', $1::text, $2::text)::regclass AND a.attnum > 0
                AND NOT a.attisdropped ORDER BY a.attname"""
_CONSTRAINTS = """SELECT conname, contype, pg_get_constraintdef(oid) FROM pg_constraint
                  WHERE conrelid = format('%I.%I', $1::text, $2::text)::regclass ORDER BY conname"""
_INDEXES = """SELECT indexname, replace(indexdef, $1 || '.', '') FROM pg_indexes
              WHERE schemaname = $1 AND tablename = $2 ORDER BY indexname"""


async def describe(conn: asyncpg.Connection, schema: str, table: str) -> dict[str, list[tuple[object, ...]]]:
    return {what: [tuple(row) for row in await conn.fetch(sql, schema, table)]
            for what, sql in (("columns", _COLUMNS), ("constraints", _CONSTRAINTS), ("indexes", _INDEXES))}


@pytest.mark.parametrize("service", SERVICES)
async def test_the_model_of_the_messaging_tables_is_what_the_migrations_build(service: str) -> None:
    settings = ServiceSettings(service_name=service, database_name=f"test_{service}_messaging_schema")
    await ensure_database(settings, recreate=True)
    await asyncio.to_thread(upgrade_to_head, settings, ROOT / "services" / service / "migrations")
    conn = await asyncpg.connect(host=settings.pg_host, port=settings.pg_port, user=settings.pg_user,
                                 password=settings.pg_password.get_secret_value(), database=settings.database)
    try:
        await conn.execute("CREATE SCHEMA model")
        for table in MESSAGING_TABLES:  # the model's DDL, as the shared tests' fixture creates it
            copy = table.to_metadata(MetaData(), schema="model")
            await conn.execute(str(CreateTable(copy).compile(dialect=postgresql.dialect())))
            for index in copy.indexes:
                await conn.execute(str(CreateIndex(index).compile(dialect=postgresql.dialect())))
        for table in MESSAGING_TABLES:
            assert await describe(conn, "model", table.name) == await describe(conn, "public", table.name), table.name
    finally:
        await conn.close()


async def test_unpublished_events_and_claims_survive_the_messaging_tables_migration_both_ways() -> None:
    settings = ServiceSettings(service_name="intake", database_name="test_intake_messaging_migration")
    migrations = ROOT / "services" / "intake" / "migrations"
    await ensure_database(settings, recreate=True)
    await asyncio.to_thread(upgrade_to_head, settings, migrations, "0007")  # the one before ADR 0043's
    event, claimed = uuid.uuid4(), uuid.uuid4()
    headers = '{"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", "tracestate": "a=1"}'
    conn = await asyncpg.connect(host=settings.pg_host, port=settings.pg_port, user=settings.pg_user,
                                 password=settings.pg_password.get_secret_value(), database=settings.database)
    try:
        await conn.execute("INSERT INTO outbox (event_id, topic, key, payload, headers) "
                           "VALUES ($1, 't', 'k', '\\x7b7d', $2::jsonb)", event, headers)
        await conn.execute("INSERT INTO inbox (consumer, event_id) VALUES ('intake-journey', $1)", claimed)
        rows = "SELECT event_id, headers::jsonb AS headers FROM outbox UNION ALL SELECT event_id, NULL FROM inbox"
        before = sorted(map(tuple, await conn.fetch(rows)), key=str)
        await asyncio.to_thread(upgrade_to_head, settings, migrations)
        assert await conn.fetchval("SELECT pg_typeof(headers)::text FROM outbox") == "json"
        assert sorted(map(tuple, await conn.fetch(rows)), key=str) == before
        await asyncio.to_thread(downgrade_to, settings, migrations, "0007")
        assert await conn.fetchval("SELECT pg_typeof(headers)::text FROM outbox") == "jsonb"
        assert sorted(map(tuple, await conn.fetch(rows)), key=str) == before
        with pytest.raises(asyncpg.UniqueViolationError):  # the downgrade's unique index is back
            await conn.execute("INSERT INTO outbox (event_id, topic, key, payload, headers) "
                               "VALUES ($1, 't', 'k', '\\x7b7d', '{}')", event)
    finally:
        await conn.close()


def downgrade_to(settings: ServiceSettings, migrations: Path, revision: str) -> None:
    config = Config()
    config.set_main_option("script_location", str(migrations))
    config.attributes["database_url"] = settings.owner_database_url
    command.downgrade(config, revision)
