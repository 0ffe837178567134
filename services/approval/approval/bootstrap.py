"""Wires the approval service: its typed dependencies, the consumer's unit of work and handler, the routes."""

from pathlib import Path

from fastapi import FastAPI

from approval.config import ApprovalSettings
from approval.dependencies import ApprovalDeps, dependencies
from approval.entrypoints.gauges import publish_queue_depth
from approval.entrypoints.http import router
from approval.service_layer.cases import CaseService, StartUnitOfWork
from approval.service_layer.unit_of_work import ApprovalUnitOfWork
from shared.contracts.topics import ASSISTANCE_CALCULATED, REGISTRY_PERSON, TRANSFER_SETTLED
from shared.messaging.consumer import Handler
from shared.service import ConsumerSpec, Runtime, ServiceSpec, build_app
from shared.unit_of_work import unit_of_work

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"


def case_service(deps: ApprovalDeps, start: StartUnitOfWork) -> CaseService:
    """The commands and the consumer handler, on `start`'s units of work (tests pass a fake one)."""
    return CaseService(deps.rules, start)


def create_app(settings: ApprovalSettings | None = None) -> FastAPI:
    settings = settings or ApprovalSettings()
    if settings.bench_auto_approve and settings.environment != "development":
        raise RuntimeError("BENCH_AUTO_APPROVE is for benchmarks only; refused outside development")
    deps = dependencies(settings)

    async def build() -> ApprovalDeps:
        return deps

    def handler(runtime: Runtime[ApprovalDeps]) -> Handler[ApprovalUnitOfWork]:
        return case_service(runtime.deps, lambda: unit_of_work(runtime.db, ApprovalUnitOfWork)).handle

    return build_app(ServiceSpec(
        settings=settings,
        title="Approval: sub-district and district review",
        routers=[router],
        consumers=[ConsumerSpec("approval", [ASSISTANCE_CALCULATED, TRANSFER_SETTLED, REGISTRY_PERSON], handler,
                                unit_of_work=ApprovalUnitOfWork)],
        background=[publish_queue_depth],
        dependencies=build,
    ))
