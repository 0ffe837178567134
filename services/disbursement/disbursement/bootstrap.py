"""Wires the disbursement service."""

from pathlib import Path

from fastapi import FastAPI

from disbursement.adapters.iso20022 import Iso20022BankGateway
from disbursement.adapters.rest_bank import RestBankGateway
from disbursement.config import DisbursementSettings
from disbursement.entrypoints.http import router
from disbursement.service_layer.gauges import publish_payment_gauges
from disbursement.service_layer.payments import handle_events
from disbursement.service_layer.sender import Hints, resolve_open_payments, send_due_payments
from disbursement.service_layer.statements import reconcile_daily
from shared.contracts.topics import CASE_DECIDED, REGISTRY_PAYEE
from shared.messaging.consumer import Handler
from shared.security.crypto import FieldCipher
from shared.service import ConsumerSpec, Runtime, ServiceSpec, build_app
from shared.unit_of_work import UnitOfWork

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"


def create_app(settings: DisbursementSettings | None = None) -> FastAPI:
    settings = settings or DisbursementSettings()

    async def on_start(runtime: Runtime) -> None:
        runtime.extras["hints"] = Hints()
        runtime.extras["payee_cipher"] = FieldCipher.from_config(settings.payee_keys.get_secret_value(),
                                                                 active=settings.payee_active_key_id)
        if settings.bank_adapter == "iso20022":
            runtime.extras["bank"] = Iso20022BankGateway(
                base_url=settings.bank_base_url, debtor_account=settings.debtor_account,
                debtor_name=settings.debtor_name, timeout_s=settings.bank_timeout_s,
                max_attempts=settings.bank_max_attempts, backoff_initial_s=settings.bank_backoff_initial_s,
                backoff_max_s=settings.bank_backoff_max_s)
        else:
            runtime.extras["bank"] = RestBankGateway(
                base_url=settings.bank_base_url, timeout_s=settings.bank_timeout_s,
                max_attempts=settings.bank_max_attempts, backoff_initial_s=settings.bank_backoff_initial_s,
                backoff_max_s=settings.bank_backoff_max_s)

    async def on_stop(runtime: Runtime) -> None:
        await runtime.extras["bank"].aclose()

    def handler(runtime: Runtime) -> Handler[UnitOfWork]:
        return lambda uow, events: handle_events(uow.session, settings, events)

    return build_app(ServiceSpec(
        settings=settings,
        title="Disbursement: payments to residents' bank accounts",
        routers=[router],
        consumers=[ConsumerSpec("disbursement", [CASE_DECIDED, REGISTRY_PAYEE], handler)],
        background=[send_due_payments, resolve_open_payments, publish_payment_gauges, reconcile_daily],
        on_start=on_start,
        on_stop=on_stop,
        signed_prefixes=("/v1/bank/callbacks",),  # the bank's signature is checked before the body is read
    ))
