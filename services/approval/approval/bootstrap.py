"""Wires the approval service."""

from pathlib import Path

from fastapi import FastAPI

from approval.config import ApprovalSettings
from approval.entrypoints.http import router
from approval.service_layer.cases import Policy, handle_events
from approval.service_layer.queues import publish_queue_depth
from shared.contracts.topics import ASSISTANCE_CALCULATED, TRANSFER_SETTLED
from shared.messaging.consumer import Handler
from shared.service import ConsumerSpec, Runtime, ServiceSpec, build_app

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"


def create_app(settings: ApprovalSettings | None = None) -> FastAPI:
    settings = settings or ApprovalSettings()
    if settings.bench_auto_approve and settings.environment != "development":
        raise RuntimeError("BENCH_AUTO_APPROVE is for benchmarks only; refused outside development")
    policy = Policy(skip_district_threshold=settings.skip_district_threshold, auto_approve=settings.bench_auto_approve)

    async def on_start(runtime: Runtime) -> None:
        runtime.extras["policy"] = policy

    def handler(runtime: Runtime) -> Handler:
        return lambda session, events: handle_events(session, settings, policy, events)

    return build_app(ServiceSpec(
        settings=settings,
        title="Approval: sub-district and district review",
        routers=[router],
        consumers=[ConsumerSpec("approval", [ASSISTANCE_CALCULATED, TRANSFER_SETTLED], handler)],
        background=[publish_queue_depth],
        on_start=on_start,
    ))
