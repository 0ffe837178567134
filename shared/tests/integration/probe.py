"""A minimal service for the messaging tests, run as its own process so it can be SIGKILLed.

python shared/tests/integration/probe.py consume|relay [--die-before-commit] [--handler-delay S]
Reads SERVICE_NAME, TOPIC_PREFIX, DATABASE_NAME like a real service.
"""

import argparse
import asyncio
import os
import signal
from collections.abc import Sequence

from sqlalchemy import text

from shared.contracts.events import SettlementReceived
from shared.contracts.topics import SETTLEMENT_RECEIVED
from shared.db import Database
from shared.messaging.consumer import ConsumerRunner, Event
from shared.messaging.kafka import KafkaProducer, Message
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


class DyingProducer(KafkaProducer):
    """Publishes, then dies before the relay can commit the rows' delete: the crash the outbox must survive."""

    async def publish(self, messages: Sequence[Message], timeout_s: float) -> None:
        await super().publish(messages, timeout_s)
        os._exit(9)


async def main(args: argparse.Namespace) -> None:
    settings = ServiceSettings()
    db = Database(settings)
    producer = (DyingProducer if args.die_before_commit else KafkaProducer)(settings)
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
        worker = OutboxRelay(db, producer, settings)
    task = asyncio.create_task(worker.run())
    await stop.wait()
    worker.stop()
    await task
    await producer.stop()
    await db.dispose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["consume", "relay"])
    parser.add_argument("--die-before-commit", action="store_true")
    parser.add_argument("--handler-delay", type=float, default=0.0)
    asyncio.run(main(parser.parse_args()))
