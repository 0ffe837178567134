"""The gateway's delivery reports: the last word on a message it accepted."""

from datetime import UTC, datetime
from uuid import UUID

from notification.adapters.metrics import MESSAGE_OUTCOMES
from notification.service_layer.unit_of_work import NotificationUnitOfWork


async def record_delivery_report(uow: NotificationUnitOfWork, message_id: UUID, status: str,
                                 reason: str | None) -> None:
    """Move a message to `delivered` or `undeliverable`; a report for an unknown or already final message
    changes nothing (the gateway may report twice)."""
    if await uow.messages.report(message_id, status, reason, datetime.now(UTC)):
        MESSAGE_OUTCOMES.labels(status).inc()
