"""Wires the eligibility service: its consumers, routes and typed dependencies (the keys)."""

from pathlib import Path

from fastapi import FastAPI

from eligibility.config import EligibilitySettings, Keys
from eligibility.dependencies import EligibilityDeps
from eligibility.entrypoints.http import router
from eligibility.service_layer.screening import record_policies, screen_events
from eligibility.service_layer.unit_of_work import EligibilityUnitOfWork
from shared.contracts.topics import POLICY_PUBLISHED, SETTLEMENT_RECEIVED
from shared.messaging.consumer import Handler
from shared.service import ConsumerSpec, Runtime, ServiceSpec, build_app

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"


def screening_handler(runtime: Runtime[EligibilityDeps]) -> Handler[EligibilityUnitOfWork]:
    """Screens a batch of settlement.received in one unit of work."""
    return screen_events


def policies_handler(runtime: Runtime[EligibilityDeps]) -> Handler[EligibilityUnitOfWork]:
    """Keeps a batch of policy.published and screens again what their lookback may now cover."""
    return record_policies


CONSUMERS = [
    ConsumerSpec("eligibility", [SETTLEMENT_RECEIVED], screening_handler, unit_of_work=EligibilityUnitOfWork),
    ConsumerSpec("eligibility-policies", [POLICY_PUBLISHED], policies_handler, unit_of_work=EligibilityUnitOfWork),
]


def create_app(settings: EligibilitySettings | None = None) -> FastAPI:
    settings = settings or EligibilitySettings()

    async def dependencies() -> EligibilityDeps:
        return EligibilityDeps(settings=settings, keys=Keys.of(settings))

    return build_app(ServiceSpec(
        settings=settings,
        title="Eligibility: registry, consent and screening",
        routers=[router],
        consumers=CONSUMERS,
        dependencies=dependencies,
        media_types={"/v1/registry/import": frozenset({"text/csv"})},
    ))
