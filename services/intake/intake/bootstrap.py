"""Wires the intake service."""

from pathlib import Path

from fastapi import FastAPI

from intake.config import IntakeSettings
from intake.entrypoints import ops
from intake.entrypoints.http import router
from intake.service_layer.journey import follow_journey
from shared.contracts.topics import ASSISTANCE_CALCULATED, CASE_DECIDED, ELIGIBILITY_DECIDED, TRANSFER_SETTLED
from shared.security.crypto import FieldCipher
from shared.service import ConsumerSpec, Runtime, ServiceSpec, build_app

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"


def create_app(settings: IntakeSettings | None = None) -> FastAPI:
    settings = settings or IntakeSettings()

    async def on_start(runtime: Runtime) -> None:
        runtime.extras["cipher"] = FieldCipher.from_config(settings.field_keys.get_secret_value(),
                                                           active=settings.field_active_key_id)
        runtime.extras["pepper"] = settings.person_ref_pepper.get_secret_value().encode()

    return build_app(ServiceSpec(
        settings=settings,
        title="Intake: hospital settlements",
        routers=[router, ops.router],
        consumers=[ConsumerSpec(
            group_id="intake-journey",
            topics=[ELIGIBILITY_DECIDED, ASSISTANCE_CALCULATED, CASE_DECIDED, TRANSFER_SETTLED],
            handler=lambda runtime: lambda uow, events: follow_journey(uow.session, events),
        )],
        on_start=on_start,
        signed_prefixes=("/v1/",),  # every hospital route is signed
    ))
