"""Calculation's tables: published policies, per-person annual ledgers, calculations and recoveries."""

from datetime import date, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from sqlalchemy import JSON, Column, DateTime, Numeric, func
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel


def _money(nullable: bool = False) -> Any:
    return Field(sa_column=Column(Numeric(14, 2), nullable=nullable))


class PolicyRow(SQLModel, table=True):
    """One published version of a policy document, and when it was announced (policy.published)."""

    __tablename__ = "policy"

    policy_id: str = Field(primary_key=True, max_length=64)
    version: int = Field(primary_key=True)
    region_code: str = Field(max_length=12, index=True)
    effective_from: date
    effective_to: date | None = None
    document: dict[str, Any] = Field(sa_column=Column(JSONB, nullable=False))
    published_by: str = Field(max_length=64)
    published_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False, server_default=func.now()))
    announced_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True), nullable=True))


class LedgerRow(SQLModel, table=True):
    """Deductible used and assistance committed for one person in one calendar year."""

    __tablename__ = "ledger"

    person_ref: str = Field(primary_key=True, max_length=64)
    year: int = Field(primary_key=True)
    deductible_used: Decimal = _money()
    committed: Decimal = _money()


class CalculationRow(SQLModel, table=True):
    """One settlement's calculation (domain.calculation.Calculation): the settlement as received, the figures,
    the state. `status` holds a CalculationStatus."""

    __tablename__ = "calculation"
    # Half of each page free: the two updates after the insert (approved, paid) stay HOT (migration 0004).
    __table_args__ = {"postgresql_with": {"fillfactor": 50}}

    id: UUID = Field(primary_key=True)
    settlement_id: UUID = Field(unique=True)
    person_ref: str = Field(max_length=64, index=True)
    year: int
    category: str = Field(max_length=32)
    district_code: str = Field(max_length=12)
    subdistrict_code: str = Field(max_length=12)
    policy_id: str | None = Field(default=None, max_length=64)
    policy_version: int | None = None
    deductible_applied: Decimal = _money()
    assistance: Decimal = _money()
    settlement: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    figures: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    status: str = Field(max_length=32)
    released: bool = False
    created_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False, server_default=func.now()))


class RecoveryRow(SQLModel, table=True):
    """Money paid for a settlement the hospital later reversed: the district recovers it."""

    __tablename__ = "recovery"

    id: UUID = Field(primary_key=True)
    calculation_id: UUID = Field(unique=True)
    settlement_id: UUID
    person_ref: str = Field(max_length=64)
    district_code: str = Field(max_length=12, index=True)
    amount: Decimal = _money()
    status: str = Field(default="open", max_length=16)
    created_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False, server_default=func.now()))
