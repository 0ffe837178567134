"""Wires the notification service."""

from pathlib import Path

from fastapi import FastAPI

from notification.adapters.sms_gateway import SmsGateway
from notification.config import NotificationSettings
from notification.domain.schedule import QuietHours
from notification.domain.templates import load_templates
from notification.entrypoints.http import router
from notification.service_layer.follow import Wording, follow_events
from notification.service_layer.sender import send_due_messages
from shared.contracts.topics import (
    ASSISTANCE_CALCULATED,
    CASE_DECIDED,
    ELIGIBILITY_DECIDED,
    REGISTRY_CONTACT,
    REGISTRY_PAYEE,
    TRANSFER_SETTLED,
)
from shared.messaging.consumer import Handler
from shared.security.crypto import FieldCipher
from shared.service import ConsumerSpec, Runtime, ServiceSpec, build_app
from shared.unit_of_work import UnitOfWork

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"
TEMPLATES = Path(__file__).resolve().parent / "templates"
TOPICS = [REGISTRY_CONTACT, REGISTRY_PAYEE, ELIGIBILITY_DECIDED, ASSISTANCE_CALCULATED, CASE_DECIDED, TRANSFER_SETTLED]


def create_app(settings: NotificationSettings | None = None) -> FastAPI:
    settings = settings or NotificationSettings()
    templates = load_templates(TEMPLATES)
    version = settings.sms_template_version or max(templates)
    if version not in templates:
        raise ValueError(f"SMS_TEMPLATE_VERSION {version}: no such template document")
    quiet = QuietHours.parse(settings.sms_quiet_hours)
    wording = Wording(templates[version], quiet, settings.hospital_names, settings.sms_hold_s)

    async def on_start(runtime: Runtime) -> None:
        runtime.extras["wording"] = wording
        runtime.extras["quiet_hours"] = quiet
        runtime.extras["contact_cipher"] = FieldCipher.from_config(settings.contact_keys.get_secret_value(),
                                                                   active=settings.contact_active_key_id)
        runtime.extras["sms"] = SmsGateway(
            base_url=settings.sms_base_url, timeout_s=settings.sms_timeout_s, max_attempts=settings.sms_max_attempts,
            backoff_initial_s=settings.sms_backoff_initial_s, backoff_max_s=settings.sms_backoff_max_s)

    async def on_stop(runtime: Runtime) -> None:
        await runtime.extras["sms"].aclose()

    def handler(runtime: Runtime) -> Handler[UnitOfWork]:
        return lambda uow, events: follow_events(uow.session, wording, events)

    return build_app(ServiceSpec(
        settings=settings,
        title="Notification: one message per moment, and the resident's own status",
        routers=[router],
        consumers=[ConsumerSpec("notification", TOPICS, handler)],
        background=[send_due_messages],
        on_start=on_start,
        on_stop=on_stop,
    ))
