"""Notification's tables: contacts (phone still under the transport key), messages, the resident view."""

from datetime import date, datetime
from decimal import Decimal
from uuid import UUID

from sqlalchemy import BigInteger, Column, DateTime, Identity, Numeric, Table, func
from sqlmodel import Field, SQLModel


class Recipient(SQLModel, table=True):
    """Whom a message goes to: the contact as eligibility last sent it (the phone still under the contact
    transport key, decrypted only to send) and the masked account the texts name."""

    __tablename__ = "recipient"

    person_ref: str = Field(primary_key=True, max_length=64)
    contact_version: int
    phone_ciphertext: str | None = None
    phone_masked: str | None = Field(default=None, max_length=16)
    sms_opt_out: bool = False
    account_masked: str | None = Field(default=None, max_length=32)  # from registry.payee, for the texts
    updated_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False, server_default=func.now()))


class PayeeAccount(SQLModel, table=True):
    """Every account version the registry sent for a person, masked: a message about a transfer names the
    account that transfer went to, even when the registry has sent a corrected one since."""

    __tablename__ = "payee_account"

    person_ref: str = Field(primary_key=True, max_length=64)
    account_version: int = Field(primary_key=True)
    account_masked: str = Field(max_length=32)


class Message(SQLModel, table=True):
    """One SMS: its id comes from (event, person) and is the gateway's idempotency key."""

    __tablename__ = "message"

    id: UUID = Field(primary_key=True)
    seq: int | None = Field(default=None, sa_column=Column(BigInteger, Identity(), nullable=False))
    event_id: UUID
    person_ref: str = Field(max_length=64)  # indexed with the order (migration 0004: every index and why)
    settlement_id: UUID | None = None
    moment: str = Field(max_length=32)
    template_version: int
    body: str
    status: str = Field(max_length=16)
    """held (no phone yet) | pending (due at not_before) | sending | sent | delivered | failed | undeliverable |
    suppressed (opted out)."""
    attempts: int = 0
    occurred_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    """When the event happened: a person's messages go (and are listed) in this order, whatever the topics'."""
    not_before: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    gateway_id: str | None = Field(default=None, max_length=64)
    failure_reason: str | None = Field(default=None, max_length=64)
    traceparent: str | None = Field(default=None, max_length=64)
    created_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    sent_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))
    delivered_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))
    updated_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))


class ResidentSettlement(SQLModel, table=True):
    """The resident's view of one settlement, fed by the events: decision, assistance, review, payment."""

    __tablename__ = "resident_settlement"
    __table_args__ = {"postgresql_with": {"fillfactor": 50}}  # room for its updates on the page (migration 0005)

    settlement_id: UUID = Field(primary_key=True)
    person_ref: str = Field(max_length=64, index=True)
    hospital_id: str | None = Field(default=None, max_length=32)
    visit_type: str | None = Field(default=None, max_length=32)
    discharge_date: date | None = None
    district_code: str | None = Field(default=None, max_length=12)
    subdistrict_code: str | None = Field(default=None, max_length=12)
    eligible: bool | None = None
    eligibility_reason: str | None = Field(default=None, max_length=32)
    assistance: Decimal | None = Field(default=None, sa_column=Column(Numeric(14, 2)))
    review_state: str | None = Field(default=None, max_length=32)
    review_reason: str | None = Field(default=None, max_length=64)
    payment_status: str | None = Field(default=None, max_length=16)
    payment_reason: str | None = Field(default=None, max_length=64)
    payment_attempt: int | None = None
    paid_amount: Decimal | None = Field(default=None, sa_column=Column(Numeric(14, 2)))
    paid_on: date | None = None
    reversed: bool = False
    recovery: bool = False
    updated_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))


# The Core tables, for bulk statements (SQLModel's metadata holds them, typed).
RECIPIENTS: Table = SQLModel.metadata.tables["recipient"]
ACCOUNTS: Table = SQLModel.metadata.tables["payee_account"]
MESSAGES: Table = SQLModel.metadata.tables["message"]
VIEW: Table = SQLModel.metadata.tables["resident_settlement"]
