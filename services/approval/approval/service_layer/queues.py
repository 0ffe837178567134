"""Queue depth per sub-district, for dashboards (Prometheus) and the ops view."""

import asyncio
import logging
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from approval.adapters.metrics import QUEUE_DEPTH, QUEUE_OLDEST
from approval.adapters.tables import CaseRecord
from approval.domain.case import CaseState
from shared.service import Runtime

log = logging.getLogger(__name__)
OPEN = [CaseState.AWAITING_SUBDISTRICT.value, CaseState.AWAITING_DISTRICT.value]


async def queue_depth(session: AsyncSession, district: str | None = None) -> list[dict[str, Any]]:
    query = (select(CaseRecord.subdistrict_code, CaseRecord.state, func.count(), func.min(CaseRecord.created_at))
             .where(CaseRecord.state.in_(OPEN))  # type: ignore[attr-defined]
             .group_by(CaseRecord.subdistrict_code, CaseRecord.state))
    if district:
        query = query.where(CaseRecord.district_code == district)
    now = datetime.now(UTC)
    return [{"subdistrict_code": s, "state": st, "count": n, "oldest_created_at": oldest.isoformat(),
             "oldest_age_s": round((now - oldest).total_seconds(), 1)}
            for s, st, n, oldest in (await session.execute(query)).all()]


async def publish_queue_depth(runtime: Runtime, stopping: asyncio.Event) -> None:
    """Refresh the queue gauges every few seconds (a cheap grouped count on an index)."""
    while not stopping.is_set():
        try:
            async with runtime.db.transaction() as session:
                rows = await queue_depth(session)
            QUEUE_DEPTH.clear()
            QUEUE_OLDEST.clear()
            for row in rows:
                QUEUE_DEPTH.labels(row["subdistrict_code"], row["state"]).set(row["count"])
                QUEUE_OLDEST.labels(row["subdistrict_code"], row["state"]).set(row["oldest_age_s"])
        except Exception:
            log.exception("queue depth refresh failed")
        try:
            await asyncio.wait_for(stopping.wait(), timeout=5)
        except TimeoutError:
            pass
