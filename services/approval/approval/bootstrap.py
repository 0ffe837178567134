"""Wires the approval service."""

from pathlib import Path

from fastapi import FastAPI

from approval.config import ApprovalSettings
from approval.domain.review import FlagRules
from approval.entrypoints.http import router
from approval.service_layer.cases import Policy, handle_events
from approval.service_layer.queues import publish_queue_depth
from approval.service_layer.review import ReviewContext
from shared.contracts.topics import ASSISTANCE_CALCULATED, REGISTRY_PERSON, TRANSFER_SETTLED
from shared.messaging.consumer import Handler
from shared.security.crypto import FieldCipher
from shared.service import ConsumerSpec, Runtime, ServiceSpec, build_app
from shared.unit_of_work import UnitOfWork

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"


def create_app(settings: ApprovalSettings | None = None) -> FastAPI:
    settings = settings or ApprovalSettings()
    if settings.bench_auto_approve and settings.environment != "development":
        raise RuntimeError("BENCH_AUTO_APPROVE is for benchmarks only; refused outside development")
    policy = Policy(skip_district_threshold=settings.skip_district_threshold, auto_approve=settings.bench_auto_approve)

    async def on_start(runtime: Runtime) -> None:
        runtime.extras["policy"] = policy
        runtime.extras["review"] = ReviewContext(
            case_view=FieldCipher.from_config(settings.case_view_keys.get_secret_value(),
                                              active=settings.case_view_active_key_id),
            rules=FlagRules(large_amount=settings.large_amount_threshold,
                            frequent_count=settings.frequent_settlements, frequent_days=settings.frequent_days,
                            account_change_days=settings.account_change_days),
            hospital_names=settings.hospital_names)

    def handler(runtime: Runtime) -> Handler[UnitOfWork]:
        return lambda uow, events: handle_events(uow.session, settings, policy, events)

    return build_app(ServiceSpec(
        settings=settings,
        title="Approval: sub-district and district review",
        routers=[router],
        consumers=[ConsumerSpec("approval", [ASSISTANCE_CALCULATED, TRANSFER_SETTLED, REGISTRY_PERSON], handler)],
        background=[publish_queue_depth],
        on_start=on_start,
    ))
