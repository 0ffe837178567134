"""Helpers of the messaging integration tests."""

import asyncio
import hashlib
import os
import subprocess
import sys
import uuid
from collections.abc import Awaitable, Callable
from datetime import date
from decimal import Decimal
from pathlib import Path

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError
from sqlalchemy import text

from shared.contracts.envelope import Envelope
from shared.contracts.events import SettlementReceived
from shared.contracts.topics import SETTLEMENT_RECEIVED
from shared.db import Database
from shared.messaging.outbox import Outgoing, add_events
from shared.settings import ServiceSettings
from shared.testing import ROOT

PROBE = Path(__file__).with_name("probe.py")


def settlement_event(i: int, hospital_id: str = "H001", person: int | None = None) -> Envelope:
    person_ref = hashlib.sha256(f"person-{i if person is None else person}".encode()).hexdigest()
    data = SettlementReceived(
        settlement_id=uuid.uuid4(), hospital_id=hospital_id, hospital_settlement_id=f"S{i}", hospital_level=2,
        visit_type="inpatient", admission_date=date(2026, 3, 1), discharge_date=date(2026, 3, 5),
        total_amount=Decimal("1000.00"), policy_scope_amount=Decimal("900.00"),
        basic_insurance_paid=Decimal("500.00"), critical_illness_paid=Decimal("0.00"),
    )
    return Envelope.wrap(data, person_ref=person_ref, producer="probe")


async def write_outbox(db: Database, settings: ServiceSettings, envelopes: list[Envelope]) -> None:
    for start in range(0, len(envelopes), 1000):
        async with db.transaction() as session:
            chunk = envelopes[start:start + 1000]
            await add_events(session, settings, [Outgoing(SETTLEMENT_RECEIVED, e) for e in chunk])


async def effects(db: Database) -> tuple[int, int]:
    """(rows applied, the highest number of times any one event was applied)."""
    async with db.transaction() as session:
        row = (await session.execute(text("SELECT count(*), coalesce(max(applied), 0) FROM probe_effects"))).one()
    return int(row[0]), int(row[1])


async def wait_until(predicate: Callable[[], Awaitable[bool]], timeout: float, what: str) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.2)


async def committed_total(settings: ServiceSettings, group: str) -> int:
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(f"{settings.topic_prefix}{group}")
        return sum(meta.offset for meta in offsets.values() if meta.offset > 0)
    except KafkaError:
        return 0  # a new broker creates its offsets topic on first use: not there yet, nothing committed yet
    finally:
        await admin.close()


def spawn_probe(settings: ServiceSettings, *args: str) -> subprocess.Popen[bytes]:
    env = dict(os.environ, SERVICE_NAME="probe", TOPIC_PREFIX=settings.topic_prefix,
               DATABASE_NAME=settings.database, CONSUMER_BATCH_MAX="100", PYTHONPATH=str(ROOT))
    return subprocess.Popen([sys.executable, str(PROBE), *args], env=env, cwd=ROOT)
