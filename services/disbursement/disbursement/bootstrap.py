"""Wires the disbursement service: its typed dependencies, the consumer handler, the background passes on the
one worker loop, the routes. Tests build the same passes with fake units of work and a fake bank."""

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from fastapi import FastAPI

from disbursement.adapters.bank import BankGateway
from disbursement.adapters.iso20022 import Iso20022BankGateway
from disbursement.adapters.rest_bank import RestBankGateway
from disbursement.config import DisbursementSettings
from disbursement.dependencies import DisbursementDeps
from disbursement.entrypoints.http import router
from disbursement.service_layer.gauges import REFRESH_S, refresh_payment_gauges
from disbursement.service_layer.payments import handle_events
from disbursement.service_layer.sender import Resolver, Sender
from disbursement.service_layer.statements import reconcile_yesterday
from disbursement.service_layer.unit_of_work import (
    PAYMENTS_CANCELLING,
    PAYMENTS_DUE,
    DisbursementUnitOfWork,
    Units,
    units_of,
)
from shared.contracts.topics import CASE_DECIDED, REGISTRY_PAYEE
from shared.security.crypto import FieldCipher
from shared.service import ConsumerSpec, Runtime, ServiceSpec, build_app
from shared.worker import Wakeup, run_worker

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"
IDLE_MAX_S = 2.0
"""The longest the sender and the resolver sleep between passes that found nothing (shared.worker)."""


def bank_gateway(settings: DisbursementSettings) -> BankGateway:
    """The adapter `BANK_ADAPTER` names, with its bounded retries."""
    s = settings
    if s.bank_adapter == "iso20022":
        return Iso20022BankGateway(s.bank_base_url, s.debtor_account, s.debtor_name, s.bank_timeout_s,
                                   s.bank_max_attempts, s.bank_backoff_initial_s, s.bank_backoff_max_s)
    return RestBankGateway(s.bank_base_url, s.bank_timeout_s, s.bank_max_attempts, s.bank_backoff_initial_s,
                           s.bank_backoff_max_s)


def dependencies(settings: DisbursementSettings, bank: BankGateway | None = None) -> DisbursementDeps:
    return DisbursementDeps(settings=settings, bank=bank or bank_gateway(settings),
                        payee_cipher=FieldCipher.from_config(settings.payee_keys.get_secret_value(),
                                                             active=settings.payee_active_key_id))


@dataclass(frozen=True)
class Worker:
    name: str
    step: Callable[[], Awaitable[bool]]
    idle_s: float
    wakeup: Wakeup | None = None
    idle_max_s: float | None = None
    drain: Callable[[], Awaitable[None]] | None = None
    """What a pass left going on in the background, awaited on a graceful stop."""


def workers(units: Units, deps: DisbursementDeps) -> list[Worker]:
    """Every background pass of the service, as the worker loop runs it."""
    settings = deps.settings
    sender = Sender(units, deps)
    return [
        # new payments wake the sender at once; retries fall due by the clock (polled less while none is due:
        # a retry goes at most IDLE_MAX_S late, against a resend backoff of seconds); its bank calls go on in the
        # background
        Worker("payment sender", sender.step, settings.worker_idle_s, deps.due, IDLE_MAX_S, sender.drain),
        # callbacks and cancellations wake the resolver; the rest it polls every second, never backed off: an
        # attempt the bank has not settled may say two words in a few seconds (failed, then settled after all),
        # and each must be heard; a poll that finds nothing costs one statement
        Worker("payment resolver", Resolver(units, deps).step, 1.0, deps.resolver),
        Worker("payment gauges", partial(refresh_payment_gauges, units), REFRESH_S),
        Worker("statement reconciliation", partial(reconcile_yesterday, units, deps), settings.statement_check_s),
    ]


CONSUMER = ConsumerSpec("disbursement", [CASE_DECIDED, REGISTRY_PAYEE], lambda runtime: handle_events,
                        unit_of_work=DisbursementUnitOfWork)
"""case.decided and registry.payee, each batch applied in one unit of work."""


def create_app(settings: DisbursementSettings | None = None) -> FastAPI:
    settings = settings or DisbursementSettings()

    async def build_dependencies() -> DisbursementDeps:
        return dependencies(settings)

    async def run_workers(runtime: Runtime[DisbursementDeps], stopping: asyncio.Event) -> None:
        deps = runtime.deps
        runtime.db.on_commit(PAYMENTS_DUE, deps.due.set)
        runtime.db.on_commit(PAYMENTS_CANCELLING, deps.resolver.set)
        passes = workers(units_of(runtime.db), deps)
        await asyncio.gather(*(run_worker(w.name, w.step, stopping, idle_s=w.idle_s, wakeup=w.wakeup,
                                          idle_max_s=w.idle_max_s)
                               for w in passes))
        await asyncio.gather(*(w.drain() for w in passes if w.drain))

    async def on_stop(runtime: Runtime[DisbursementDeps]) -> None:
        await runtime.deps.bank.aclose()

    return build_app(ServiceSpec(
        settings=settings,
        title="Disbursement: payments to residents' bank accounts",
        routers=[router],
        consumers=[CONSUMER],
        background=[run_workers],
        dependencies=build_dependencies,
        on_stop=on_stop,
        signed_prefixes=("/v1/bank/callbacks",),  # the bank's signature is checked before the body is read
    ))
