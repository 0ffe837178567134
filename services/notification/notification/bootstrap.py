"""Wires the notification service: its typed dependencies, the consumer handler, the sender, the routes."""

from pathlib import Path

from fastapi import FastAPI

from notification.config import NotificationSettings
from notification.dependencies import TEMPLATES, NotificationDeps, Wording
from notification.entrypoints.http import router
from notification.service_layer.follow import follow_events
from notification.service_layer.sender import send_due_messages
from notification.service_layer.unit_of_work import NotificationUnitOfWork
from shared.contracts.topics import (
    ASSISTANCE_CALCULATED,
    CASE_DECIDED,
    ELIGIBILITY_DECIDED,
    REGISTRY_CONTACT,
    REGISTRY_PAYEE,
    TRANSFER_SETTLED,
)
from shared.messaging.consumer import Handler
from shared.service import ConsumerSpec, Runtime, ServiceSpec, build_app

__all__ = ["MIGRATIONS", "TEMPLATES", "create_app", "events_handler"]
MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"
TOPICS = [REGISTRY_CONTACT, REGISTRY_PAYEE, ELIGIBILITY_DECIDED, ASSISTANCE_CALCULATED, CASE_DECIDED, TRANSFER_SETTLED]


def events_handler(runtime: Runtime[NotificationDeps]) -> Handler[NotificationUnitOfWork]:
    """The consumer handler: each batch in one notification unit of work, written with the service's wording."""
    wording = runtime.deps.wording
    return lambda uow, events: follow_events(uow, wording, events)


def create_app(settings: NotificationSettings | None = None) -> FastAPI:
    config = settings or NotificationSettings()
    wording = Wording.from_settings(config)  # a bad template document stops the service before it starts

    async def dependencies() -> NotificationDeps:
        return NotificationDeps.build(config, wording)

    async def on_stop(runtime: Runtime[NotificationDeps]) -> None:
        await runtime.deps.sms.aclose()

    return build_app(ServiceSpec(
        settings=config,
        title="Notification: one message per moment, and the resident's own status",
        routers=[router],
        consumers=[ConsumerSpec("notification", TOPICS, events_handler, unit_of_work=NotificationUnitOfWork)],
        background=[send_due_messages],
        dependencies=dependencies,
        on_stop=on_stop,
        signed_prefixes=("/v1/sms/delivery-reports",),  # the gateway's signature is checked before the body is read
    ))
