"""Wires the calculation service."""

from pathlib import Path

from fastapi import FastAPI

from calculation.config import CalculationSettings
from calculation.entrypoints.http import router
from calculation.policies import demo_policies
from calculation.service_layer.assess import handle_events
from calculation.service_layer.policies import announce_policies, seed_policies
from shared.contracts.topics import CASE_DECIDED, ELIGIBILITY_DECIDED, TRANSFER_SETTLED
from shared.messaging.consumer import Handler
from shared.service import ConsumerSpec, Runtime, ServiceSpec, build_app
from shared.unit_of_work import UnitOfWork

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"


def create_app(settings: CalculationSettings | None = None) -> FastAPI:
    settings = settings or CalculationSettings()

    async def on_start(runtime: Runtime) -> None:
        async with runtime.db.transaction() as session:
            if settings.seed_demo_policies:
                await seed_policies(session, demo_policies())
            await announce_policies(session, settings)

    def handler(runtime: Runtime) -> Handler[UnitOfWork]:
        return lambda uow, events: handle_events(uow.session, settings, events)

    return build_app(ServiceSpec(
        settings=settings,
        title="Calculation: the money rule",
        routers=[router],
        consumers=[ConsumerSpec("calculation", [ELIGIBILITY_DECIDED, CASE_DECIDED, TRANSFER_SETTLED], handler)],
        on_start=on_start,
    ))
