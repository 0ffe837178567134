"""Wires the intake service: its typed dependencies, the journey follower, the forgetting of used signatures, the
hospital and ops routes."""

from pathlib import Path

from fastapi import FastAPI

from intake.config import IntakeSettings
from intake.dependencies import IntakeDeps
from intake.entrypoints import ops
from intake.entrypoints.http import router
from intake.service_layer.journey import follow_journey
from intake.service_layer.signatures import forget_used_signatures
from intake.service_layer.unit_of_work import IntakeUnitOfWork
from shared.contracts.topics import ASSISTANCE_CALCULATED, CASE_DECIDED, ELIGIBILITY_DECIDED, TRANSFER_SETTLED
from shared.messaging.consumer import Handler
from shared.service import ConsumerSpec, Runtime, ServiceSpec, build_app

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"
JOURNEY_TOPICS = (ELIGIBILITY_DECIDED, ASSISTANCE_CALCULATED, CASE_DECIDED, TRANSFER_SETTLED)


def journey_handler(runtime: Runtime[IntakeDeps]) -> Handler[IntakeUnitOfWork]:
    """The consumer handler of the downstream topics: each batch in one intake unit of work."""
    return follow_journey


def create_app(settings: IntakeSettings | None = None) -> FastAPI:
    settings = settings or IntakeSettings()
    config = settings

    async def dependencies() -> IntakeDeps:
        return IntakeDeps.build(config)

    return build_app(ServiceSpec(
        settings=settings,
        title="Intake: hospital settlements",
        routers=[router, ops.router],
        consumers=[ConsumerSpec(group_id="intake-journey", topics=JOURNEY_TOPICS, handler=journey_handler,
                                unit_of_work=IntakeUnitOfWork)],
        background=[forget_used_signatures],
        dependencies=dependencies,
        signed_prefixes=("/v1/",),  # every hospital route is signed
    ))
