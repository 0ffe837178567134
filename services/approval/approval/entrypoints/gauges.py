"""The queue gauges for dashboards (Prometheus): open cases per sub-district and state, and the oldest's age."""

import asyncio
from typing import Any

from approval.adapters.metrics import QUEUE_DEPTH, QUEUE_OLDEST
from approval.entrypoints.views import queue_depth
from shared.security.area import Area
from shared.service import Runtime
from shared.worker import run_worker

REFRESH_S = 5.0


async def publish_queue_depth(runtime: Runtime[Any], stopping: asyncio.Event) -> None:
    """Refresh the gauges every few seconds (a cheap grouped count on an index), on the one worker loop."""

    async def refresh() -> bool:
        rows = await queue_depth(runtime.db, Area())
        QUEUE_DEPTH.clear()
        QUEUE_OLDEST.clear()
        for row in rows:
            QUEUE_DEPTH.labels(row["subdistrict_code"], row["state"]).set(row["count"])
            QUEUE_OLDEST.labels(row["subdistrict_code"], row["state"]).set(row["oldest_age_s"])
        return False  # never more to do at once: wait for the next refresh

    await run_worker("queue-gauges", refresh, stopping, idle_s=REFRESH_S)
