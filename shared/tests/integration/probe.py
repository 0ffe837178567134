"""A minimal service for the messaging tests, run as its own process so it can be SIGKILLed.

python shared/tests/integration/probe.py consume|relay [--die-before-mark] [--handler-delay S]
Reads SERVICE_NAME, TOPIC_PREFIX, DATABASE_NAME like a real service.
"""

import argparse
import asyncio
import os
import signal
from collections.abc import Sequence

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from shared.contracts.events import SettlementReceived
from shared.contracts.topics import SETTLEMENT_RECEIVED
from shared.db import Database
from shared.messaging.consumer import ConsumerRunner, Event
from shared.messaging.kafka import KafkaProducer
from shared.messaging.outbox import OutboxRelay
from shared.settings import ServiceSettings
from shared.unit_of_work import UnitOfWork

PROBE_SCHEMA = """
CREATE TABLE IF NOT EXISTS probe_effects (event_id uuid PRIMARY KEY, applied int NOT NULL);
"""


def probe_handler(delay: float = 0.0):
    async def handle(uow: UnitOfWork, events: Sequence[Event]) -> None:
        for event in events:
            data = event.data
            if isinstance(data, SettlementReceived) and data.hospital_id == "POISON":
                raise ValueError("probe poison")
        await uow.session.execute(
            text("INSERT INTO probe_effects (event_id, applied) SELECT unnest(CAST(:ids AS uuid[])), 1 "
                 "ON CONFLICT (event_id) DO UPDATE SET applied = probe_effects.applied + 1"),
            {"ids": [str(e.envelope.event_id) for e in events]},
        )
        if delay:
            await asyncio.sleep(delay)

    return handle


class DyingRelay(OutboxRelay):
    """Publishes, then dies before it can mark the rows sent: the crash the outbox must survive."""

    async def _mark_published(self, session: AsyncSession, ids: list[int]) -> None:
        os._exit(9)


async def main(args: argparse.Namespace) -> None:
    settings = ServiceSettings()
    db = Database(settings)
    producer = KafkaProducer(settings)
    await producer.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    worker: ConsumerRunner[UnitOfWork] | OutboxRelay
    if args.mode == "consume":
        worker = ConsumerRunner(settings=settings, db=db, producer=producer, group_id="probe",
                                topics=[SETTLEMENT_RECEIVED], handler=probe_handler(args.handler_delay),
                                unit_of_work=UnitOfWork)
    else:
        worker = (DyingRelay if args.die_before_mark else OutboxRelay)(db, producer, settings)
    task = asyncio.create_task(worker.run())
    await stop.wait()
    worker.stop()
    await task
    await producer.stop()
    await db.dispose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["consume", "relay"])
    parser.add_argument("--die-before-mark", action="store_true")
    parser.add_argument("--handler-delay", type=float, default=0.0)
    asyncio.run(main(parser.parse_args()))
