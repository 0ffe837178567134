"""Intake's unit of work: one transaction, the settlements and signatures repositories, and the events to emit."""

from sqlalchemy.ext.asyncio import AsyncSession

from intake.adapters.repositories import NonceRepository, SettlementRepository
from shared.settings import ServiceSettings
from shared.unit_of_work import UnitOfWork


class IntakeUnitOfWork(UnitOfWork):
    def __init__(self, session: AsyncSession, settings: ServiceSettings) -> None:
        super().__init__(session, settings)
        self.settlements = SettlementRepository(session)
        self.nonces = NonceRepository(session)
