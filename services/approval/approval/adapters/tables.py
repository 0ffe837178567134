"""Approval's tables: cases and their append-only audit trail."""

from datetime import date, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from sqlalchemy import JSON, Column, DateTime, Numeric, func
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel


class CaseRecord(SQLModel, table=True):
    __tablename__ = "case"
    # Half of each page free: a batch's payment_status updates stay HOT, every case of a page at once (0012).
    __table_args__ = {"postgresql_with": {"fillfactor": 50}}

    id: UUID = Field(primary_key=True)
    calculation_id: UUID = Field(unique=True)
    settlement_id: UUID
    person_ref: str = Field(max_length=64)
    hospital_id: str = Field(max_length=32)
    district_code: str = Field(max_length=12)
    subdistrict_code: str = Field(max_length=12)
    category: str = Field(max_length=32)
    discharge_date: date
    amount: Decimal = Field(sa_column=Column(Numeric(14, 2), nullable=False))
    state: str = Field(max_length=32)
    payment_status: str | None = Field(default=None, max_length=32)
    payment_failures: int = 0
    traceparent: str | None = Field(default=None, max_length=64)
    recovery_id: UUID | None = None  # set when the settlement was reversed after payment (calculation's recovery)
    recovery_amount: Decimal | None = Field(default=None, sa_column=Column(Numeric(14, 2), nullable=True))
    recovery_opened_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True), nullable=True))
    calculation: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    created_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False, server_default=func.now()))
    updated_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False, server_default=func.now()))


class AuditRecord(SQLModel, table=True):
    """One action on a case. The database refuses UPDATE and DELETE on this table (a trigger)."""

    __tablename__ = "case_audit"

    id: int | None = Field(default=None, primary_key=True)
    case_id: UUID = Field(index=True)
    actor: str = Field(max_length=64)
    role: str = Field(max_length=32)
    action: str = Field(max_length=32)
    from_state: str | None = Field(default=None, max_length=32)
    to_state: str = Field(max_length=32)
    reason: str | None = Field(default=None, max_length=64)
    comment: str | None = Field(default=None, max_length=500)
    at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False, server_default=func.now()))


class PersonView(SQLModel, table=True):
    """The registry's latest entry for a person (PersonRecorded), name and national ID still encrypted as sent."""

    __tablename__ = "person_view"

    person_ref: str = Field(primary_key=True, max_length=64)
    identity_enc: str
    district_code: str = Field(max_length=12)
    subdistrict_code: str = Field(max_length=12)
    periods: list[dict[str, Any]] = Field(sa_column=Column(JSONB, nullable=False))
    consents: list[dict[str, Any]] = Field(sa_column=Column(JSONB, nullable=False))
    account_version: int
    account_changed_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))
    recorded_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))


class PersonCalculation(SQLModel, table=True):
    """Each calculation for a person (also those with nothing to pay): what it took of the year's ledger."""

    __tablename__ = "person_calculation"

    calculation_id: UUID = Field(primary_key=True)
    settlement_id: UUID
    person_ref: str = Field(max_length=64)
    year: int
    hospital_id: str = Field(max_length=32)
    hospital_settlement_id: str | None = Field(default=None, max_length=64)
    discharge_date: date
    deductible_applied: Decimal = Field(sa_column=Column(Numeric(14, 2), nullable=False))
    assistance: Decimal = Field(sa_column=Column(Numeric(14, 2), nullable=False))
    deductible: Decimal = Field(sa_column=Column(Numeric(14, 2), nullable=False))
    cap: Decimal = Field(sa_column=Column(Numeric(14, 2), nullable=False))
    released: bool = False
    created_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False, server_default=func.now()))

