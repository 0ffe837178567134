"""Helpers for integration tests: isolated topics and a fresh database per test run, on the real stack."""

import asyncio
import os
import uuid
from pathlib import Path

import asyncpg

from shared.db import ensure_database
from shared.messaging.kafka import ensure_topics
from shared.migrations import upgrade_to_head
from shared.settings import ServiceSettings

ROOT = Path(__file__).resolve().parent.parent


def unique_prefix(label: str) -> str:
    """A topic prefix no other run uses, so tests never see each other's messages."""
    return f"{label}-{uuid.uuid4().hex[:8]}."


async def stack_available(settings: ServiceSettings) -> bool:
    """True when the local PostgreSQL answers (the integration tests need `make up`)."""
    try:
        conn = await asyncpg.connect(host=settings.pg_host, port=settings.pg_port, user=settings.pg_user,
                                     password=settings.pg_password.get_secret_value(), database="postgres",
                                     timeout=3)
    except (OSError, asyncpg.PostgresError):
        return False
    await conn.close()
    return True


async def prepare(settings: ServiceSettings, migrations_dir: Path | None = None) -> None:
    """Recreate the settings' database (migrated to head when a migrations folder is given) and its topics."""
    await ensure_database(settings, recreate=True)
    if migrations_dir is not None:
        await asyncio.to_thread(upgrade_to_head, settings.database_url, migrations_dir)
    await ensure_topics(settings, partitions=int(os.environ.get("KAFKA_PARTITIONS", "6")))
