"""Wires the calculation service: its consumer, routes and typed dependencies; the demo policies at start."""

from pathlib import Path

from fastapi import FastAPI

from calculation.config import CalculationSettings
from calculation.dependencies import CalculationDeps
from calculation.entrypoints.http import router
from calculation.policies import demo_policies
from calculation.service_layer.assess import handle_events
from calculation.service_layer.policies import seed_policies
from calculation.service_layer.unit_of_work import CalculationUnitOfWork
from shared.contracts.topics import CASE_DECIDED, ELIGIBILITY_DECIDED, TRANSFER_SETTLED
from shared.messaging.consumer import Handler
from shared.service import ConsumerSpec, Runtime, ServiceSpec, build_app
from shared.unit_of_work import unit_of_work

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"


def calculation_handler(runtime: Runtime[CalculationDeps]) -> Handler[CalculationUnitOfWork]:
    """Applies a batch of eligibility.decided, case.decided and transfer.settled in one unit of work."""
    return handle_events


CONSUMERS = [ConsumerSpec("calculation", [ELIGIBILITY_DECIDED, CASE_DECIDED, TRANSFER_SETTLED],
                          calculation_handler, unit_of_work=CalculationUnitOfWork)]


async def seed(runtime: Runtime[CalculationDeps]) -> None:
    """Store the demo policies (when configured) and announce every stored version: before the consumer starts,
    so no settlement of a demo region waits for its policy."""
    policies = demo_policies() if runtime.deps.settings.seed_demo_policies else []
    async with unit_of_work(runtime.db, CalculationUnitOfWork) as uow:
        await seed_policies(uow, policies)


def create_app(settings: CalculationSettings | None = None) -> FastAPI:
    settings = settings or CalculationSettings()

    async def dependencies() -> CalculationDeps:
        return CalculationDeps(settings=settings)

    return build_app(ServiceSpec(
        settings=settings,
        title="Calculation: the money rule",
        routers=[router],
        consumers=CONSUMERS,
        dependencies=dependencies,
        on_start=seed,
    ))
