"""Wires the eligibility service."""

from pathlib import Path

from fastapi import FastAPI

from eligibility.config import EligibilitySettings
from eligibility.entrypoints.http import router
from eligibility.service_layer.registry import Keys
from eligibility.service_layer.screening import record_policies, screen_events
from shared.contracts.topics import POLICY_PUBLISHED, SETTLEMENT_RECEIVED
from shared.messaging.consumer import Handler
from shared.security.crypto import FieldCipher
from shared.service import ConsumerSpec, Runtime, ServiceSpec, build_app
from shared.unit_of_work import UnitOfWork

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"


def create_app(settings: EligibilitySettings | None = None) -> FastAPI:
    settings = settings or EligibilitySettings()

    async def on_start(runtime: Runtime) -> None:
        runtime.extras["keys"] = Keys(
            pepper=settings.person_ref_pepper.get_secret_value().encode(),
            at_rest=FieldCipher.from_config(settings.field_keys.get_secret_value(),
                                            active=settings.field_active_key_id),
            payee=FieldCipher.from_config(settings.payee_keys.get_secret_value(), active=settings.payee_active_key_id),
            case_view=FieldCipher.from_config(settings.case_view_keys.get_secret_value(),
                                              active=settings.case_view_active_key_id),
            contact=FieldCipher.from_config(settings.contact_keys.get_secret_value(),
                                            active=settings.contact_active_key_id),
        )

    def screening_handler(runtime: Runtime) -> Handler[UnitOfWork]:
        return lambda uow, events: screen_events(uow.session, settings, events)

    def policies_handler(runtime: Runtime) -> Handler[UnitOfWork]:
        return lambda uow, events: record_policies(uow.session, settings, events)

    return build_app(ServiceSpec(
        settings=settings,
        title="Eligibility: registry, consent and screening",
        routers=[router],
        consumers=[ConsumerSpec("eligibility", [SETTLEMENT_RECEIVED], screening_handler),
                   ConsumerSpec("eligibility-policies", [POLICY_PUBLISHED], policies_handler)],
        on_start=on_start,
        media_types={"/v1/registry/import": frozenset({"text/csv"})},
    ))
