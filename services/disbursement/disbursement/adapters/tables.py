"""Disbursement's tables: payees (encrypted), payments, and every attempt's idempotency key. Rows, named
*Row apart from the domain's `Payment` and `Attempt` (the repositories turn one into the other)."""

from datetime import date, datetime
from decimal import Decimal
from uuid import UUID

from sqlalchemy import Column, DateTime, Numeric, func
from sqlmodel import Field, SQLModel


class PayeeRow(SQLModel, table=True):
    """A person's bank account as the registry last sent it, still encrypted (payee transport key)."""

    __tablename__ = "payee"

    person_ref: str = Field(primary_key=True, max_length=64)
    payee_ciphertext: str
    account_version: int
    account_masked: str = Field(max_length=32)
    updated_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False, server_default=func.now()))


class PaymentRow(SQLModel, table=True):
    __tablename__ = "payment"
    # Half of each page free: a batch's status moves stay HOT, every payment of a page at once (0006).
    __table_args__ = {"postgresql_with": {"fillfactor": 50}}

    id: UUID = Field(primary_key=True)
    case_id: UUID = Field(unique=True)
    calculation_id: UUID
    settlement_id: UUID
    person_ref: str = Field(max_length=64, index=True)
    district_code: str = Field(max_length=12)
    amount: Decimal = Field(sa_column=Column(Numeric(14, 2), nullable=False))
    status: str = Field(max_length=32)
    attempt: int = 1
    idempotency_key: str = Field(unique=True, max_length=64)
    account_version: int | None = None
    bank_reference: str | None = Field(default=None, max_length=64)
    failure_reason: str | None = Field(default=None, max_length=64)
    approved_on: date
    traceparent: str | None = Field(default=None, max_length=64)
    approved_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    next_attempt_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    updated_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))


class PaymentQueueRow(SQLModel, table=True):
    """A payment a worker must act on: pending (due `at` its next_attempt_at) or sending (since `at`, its
    updated_at). Written only by the triggers on `payment` (migration 0006), so that no index of `payment` names
    its moving status and its moves stay HOT (ADR 0044)."""

    __tablename__ = "payment_queue"

    payment_id: UUID = Field(primary_key=True)
    status: str = Field(max_length=32)  # pending or sending; looked up by ix_payment_queue (status, at)
    at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))


class AttemptRow(SQLModel, table=True):
    """Every idempotency key ever used, so no attempt can be re-keyed or sent twice under two keys."""

    __tablename__ = "payment_attempt"

    idempotency_key: str = Field(primary_key=True, max_length=64)
    payment_id: UUID  # looked up by uq_payment_attempt (payment_id, attempt)
    attempt: int
    account_version: int | None = None
    status: str = Field(max_length=32)
    reason: str | None = Field(default=None, max_length=64)
    created_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False, server_default=func.now()))
    sent_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))
    """Last handed to the bank; a 'never received' answer counts only once every call since could have arrived."""
    checked_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))
    bank_reference: str | None = Field(default=None, max_length=64)
    account_fingerprint: str | None = Field(default=None, max_length=64)
    """HMAC of the account the attempt was sent to, to compare with the bank's statement without storing it."""
    settled_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))


class AlarmRow(SQLModel, table=True):
    """Something the bank's word or statement shows that must not be: two payments, money for a cancelled
    case, a booking we never asked for. `recovery_amount` is what the district has to get back."""

    __tablename__ = "payment_alarm"

    id: UUID = Field(primary_key=True)
    kind: str = Field(max_length=32)
    subject: str = Field(max_length=96)
    idempotency_key: str | None = Field(default=None, max_length=64)
    payment_id: UUID | None = None
    case_id: UUID | None = None
    district_code: str | None = Field(default=None, max_length=12)
    amount: Decimal | None = Field(default=None, sa_column=Column(Numeric(14, 2)))
    recovery_amount: Decimal | None = Field(default=None, sa_column=Column(Numeric(14, 2)))
    bank_reference: str | None = Field(default=None, max_length=64)
    detail: str = Field(max_length=200)
    raised_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))


class StatementEntryRow(SQLModel, table=True):
    """One booking from the bank's statement, as matched to our attempts."""

    __tablename__ = "statement_entry"

    entry_reference: str = Field(primary_key=True, max_length=64)
    idempotency_key: str = Field(max_length=64, index=True)
    booked_on: date = Field(index=True)
    amount: Decimal = Field(sa_column=Column(Numeric(14, 2), nullable=False))
    account_fingerprint: str = Field(max_length=64)
    payment_id: UUID | None = None
    matched_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    position: int


class StatementRunRow(SQLModel, table=True):
    __tablename__ = "statement_run"

    booked_on: date = Field(primary_key=True)
    entries: int
    alarms: int
    ran_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
