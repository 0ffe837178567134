"""Create every contract topic and every service database on the local stack (idempotent)."""

import asyncio
import os

from shared.db import ensure_database
from shared.messaging.kafka import ensure_topics, wait_for_group_coordinator
from shared.settings import ServiceSettings

SERVICES = ("intake", "eligibility", "calculation", "approval", "disbursement", "notification")


async def main() -> None:
    settings = ServiceSettings()
    created = await ensure_topics(settings, partitions=int(os.environ.get("KAFKA_PARTITIONS", "6")))
    await wait_for_group_coordinator(settings)
    print(f"[stack] topics ready ({len(created)} created), consumer groups available")
    for name in SERVICES:
        await ensure_database(ServiceSettings(service_name=name))
    print(f"[stack] databases ready: {', '.join(SERVICES)}")


if __name__ == "__main__":
    asyncio.run(main())
