"""The gateway's delivery reports: the last word on a message it accepted."""

from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime

from notification.adapters.metrics import MESSAGE_OUTCOMES
from notification.domain.messages import DeliveryReport, one_per_message
from notification.service_layer.unit_of_work import NotificationUnitOfWork


async def record_delivery_reports(uow: NotificationUnitOfWork, reports: Sequence[DeliveryReport]) -> int:
    """Move each reported message to `delivered` or `undeliverable`, all in one statement; a report for an
    unknown or already final message changes nothing (the gateway may report twice). How many moved."""
    moved = await uow.messages.report(one_per_message(reports), datetime.now(UTC))
    for status, count in Counter(moved).items():
        MESSAGE_OUTCOMES.labels(status).inc(count)
    return len(moved)
