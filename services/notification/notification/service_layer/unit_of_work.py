"""Notification's unit of work: one transaction with the recipients, view and messages repositories."""

from sqlalchemy.ext.asyncio import AsyncSession

from notification.adapters.repositories import MessageRepository, RecipientRepository, ViewRepository
from shared.settings import ServiceSettings
from shared.unit_of_work import UnitOfWork


class NotificationUnitOfWork(UnitOfWork):
    def __init__(self, session: AsyncSession, settings: ServiceSettings) -> None:
        super().__init__(session, settings)
        self.recipients = RecipientRepository(session)
        self.view = ViewRepository(session)
        self.messages = MessageRepository(session)
