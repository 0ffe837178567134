"""The runtime role a service queries with holds data privileges only, on its own database only."""

import asyncio

import asyncpg
import pytest
from sqlalchemy import text

from shared.db import Database, ensure_database
from shared.migrations import apply_runtime_grants
from shared.settings import ServiceSettings

pytestmark = pytest.mark.integration


async def connect(settings: ServiceSettings, database: str | None = None) -> asyncpg.Connection:
    return await asyncpg.connect(host=settings.pg_host, port=settings.pg_port, user=settings.app_role,
                                 password=settings.pg_app_password.get_secret_value(),
                                 database=database or settings.database)


async def test_runtime_role_reads_and_writes_but_changes_no_schema(probe_settings: ServiceSettings) -> None:
    owner = Database(probe_settings, owner=True)
    async with owner.engine.begin() as conn:
        await conn.exec_driver_sql("CREATE TABLE journal (id int PRIMARY KEY, note text NOT NULL)")
        await conn.run_sync(apply_runtime_grants, probe_settings.app_role, ["journal"])
    await owner.dispose()

    app = await connect(probe_settings)
    try:
        assert not await app.fetchval("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
        await app.execute("INSERT INTO probe_effects VALUES (gen_random_uuid(), 1)")
        assert await app.execute("UPDATE probe_effects SET applied = 2") == "UPDATE 1"
        await app.execute("INSERT INTO journal VALUES (1, 'approved')")
        assert await app.fetchval("SELECT note FROM journal") == "approved"
        for statement in ("UPDATE journal SET note = 'rejected'", "DELETE FROM journal", "TRUNCATE journal",
                          "TRUNCATE probe_effects", "CREATE TABLE sneaky (id int)", "DROP TABLE probe_effects",
                          "ALTER TABLE journal DISABLE TRIGGER ALL"):
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await app.execute(statement)
        assert await app.fetchval("SELECT note FROM journal") == "approved"
    finally:
        await app.close()


async def test_runtime_role_cannot_enter_another_services_database(probe_settings: ServiceSettings) -> None:
    other = ServiceSettings(service_name="other", database_name="test_probe_other")
    await ensure_database(other, recreate=True)
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        await connect(probe_settings, other.database)


async def test_a_superuser_is_refused_as_runtime_role(probe_settings: ServiceSettings) -> None:
    careless = ServiceSettings(service_name="probe", database_name="test_probe", pg_app_user="careless_admin")
    owner = await asyncpg.connect(host=careless.pg_host, port=careless.pg_port, user=careless.pg_user,
                                  password=careless.pg_password.get_secret_value(), database="postgres")
    try:
        if not await owner.fetchval("SELECT 1 FROM pg_roles WHERE rolname = 'careless_admin'"):
            await owner.execute("CREATE ROLE careless_admin SUPERUSER NOLOGIN")
        with pytest.raises(RuntimeError, match="superuser"):
            await ensure_database(careless)
        assert await owner.fetchval("SELECT rolsuper FROM pg_roles WHERE rolname = 'careless_admin'")
    finally:
        await owner.close()


async def test_replicas_preparing_one_database_together_all_succeed(probe_settings: ServiceSettings) -> None:
    """Two instances of a service start at once: neither fails on the other's CREATE/GRANT (a CI failure once)."""
    fresh = ServiceSettings(service_name="other", database_name="test_probe_together")
    await ensure_database(fresh, recreate=True)
    owner = await asyncpg.connect(host=fresh.pg_host, port=fresh.pg_port, user=fresh.pg_user,
                                  password=fresh.pg_password.get_secret_value(), database="postgres")
    try:
        await owner.execute('DROP DATABASE "test_probe_together" WITH (FORCE)')
    finally:
        await owner.close()
    for _ in range(3):
        await asyncio.gather(*(ensure_database(fresh) for _ in range(8)))
    app = await connect(fresh)  # its runtime role was granted the database
    await app.close()


async def test_service_connections_plan_without_parallel_workers(probe_settings: ServiceSettings) -> None:
    db = Database(probe_settings)
    try:
        async with db.transaction() as session:
            assert await session.scalar(text("SHOW max_parallel_workers_per_gather")) == "0"
    finally:
        await db.dispose()
