"""Intake's tables. Personal data is stored only encrypted (FieldCipher), never in plaintext."""

from datetime import date, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from sqlalchemy import Column, DateTime, Index, Numeric, String, Table, UniqueConstraint, func
from sqlmodel import Field, SQLModel


def _money() -> Column[Any]:
    return Column(Numeric(14, 2), nullable=False)


class SettlementRow(SQLModel, table=True):
    """A hospital's settlement and where it is. Its status is rewritten by every downstream event, so no index
    holds a column the status view writes, and pages are half filled (migration 0005): the rewrites are HOT."""

    __tablename__ = "settlement"
    __table_args__ = (UniqueConstraint("hospital_id", "hospital_settlement_id", name="uq_settlement_hospital_id"),
                      Index("ix_settlement_hospital_received", "hospital_id", "received_at"))

    id: UUID = Field(primary_key=True)
    hospital_id: str = Field(max_length=32)
    hospital_settlement_id: str = Field(max_length=64)
    fingerprint: str = Field(max_length=64)
    person_ref: str = Field(max_length=64)
    national_id_enc: str
    name_enc: str
    hospital_level: int
    visit_type: str = Field(max_length=32)
    admission_date: date
    discharge_date: date
    total_amount: Decimal = Field(sa_column=_money())
    policy_scope_amount: Decimal = Field(sa_column=_money())
    basic_insurance_paid: Decimal = Field(sa_column=_money())
    critical_illness_paid: Decimal = Field(sa_column=_money())
    status: str = Field(max_length=32)
    status_reason: str | None = Field(default=None, max_length=64)
    eligibility_reason: str | None = Field(default=None, max_length=64)  # the latest screening's, kept to the end
    assistance: Decimal | None = Field(default=None, sa_column=Column(Numeric(14, 2)))
    received_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False, server_default=func.now()))
    updated_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False, server_default=func.now()))


class JourneyStepRow(SQLModel, table=True):
    """Every status event a settlement went through, for the hospital's timeline."""

    __tablename__ = "journey_step"

    id: int | None = Field(default=None, primary_key=True)
    settlement_id: UUID = Field(index=True)
    status: str = Field(max_length=32)
    reason: str | None = Field(default=None, max_length=64)
    at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False, server_default=func.now()))


class RequestNonce(SQLModel, table=True):
    """Signatures already used: a replayed request is refused."""

    __tablename__ = "request_nonce"

    hospital_id: str = Field(sa_column=Column(String(32), primary_key=True))
    signature: str = Field(sa_column=Column(String(64), primary_key=True))
    seen_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False, server_default=func.now()))
    # signed timestamp + window: until then the signature is inside the window and could be replayed
    expires_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True), index=True))


# The Core tables, for bulk statements (SQLModel's metadata holds them, typed).
SETTLEMENT_TABLE: Table = SQLModel.metadata.tables["settlement"]
JOURNEY_TABLE: Table = SQLModel.metadata.tables["journey_step"]
NONCE_TABLE: Table = SQLModel.metadata.tables["request_nonce"]
