"""Disbursement's unit of work: one transaction, its repositories, and the events and wake-ups it raised."""

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager

from sqlalchemy.ext.asyncio import AsyncSession

from disbursement.adapters.repositories import (
    AlarmRepository,
    PayeeRepository,
    PaymentRepository,
    StatementRepository,
)
from shared.db import Database, signal_after_commit
from shared.settings import ServiceSettings
from shared.unit_of_work import UnitOfWork, unit_of_work

PAYMENTS_DUE = "payments.due"
PAYMENTS_CANCELLING = "payments.cancelling"


class DisbursementUnitOfWork(UnitOfWork):
    def __init__(self, session: AsyncSession, settings: ServiceSettings) -> None:
        super().__init__(session, settings)
        self.payees = PayeeRepository(session)
        self.payments = PaymentRepository(session)
        self.alarms = AlarmRepository(session)
        self.statements = StatementRepository(session)

    def wake_sender(self) -> None:
        """Payments fell due: the sender's next pass starts when this commits, instead of at its next poll."""
        signal_after_commit(self.session, PAYMENTS_DUE)

    def wake_resolver(self) -> None:
        """A cancellation waits for the bank's word: the resolver asks as soon as this commits."""
        signal_after_commit(self.session, PAYMENTS_CANCELLING)


Units = Callable[[], AbstractAsyncContextManager[DisbursementUnitOfWork]]
"""Opens a fresh unit of work (one transaction); the background passes open several, with bank calls between."""


def units_of(db: Database) -> Units:
    """Units of work on the service's database."""
    return lambda: unit_of_work(db, DisbursementUnitOfWork)
