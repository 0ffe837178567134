"""Eligibility's tables: the registry (persons, category periods), consents and screenings."""

from datetime import date, datetime
from typing import Any
from uuid import UUID

from sqlalchemy import JSON, Column, DateTime, UniqueConstraint, func
from sqlmodel import Field, SQLModel


class PersonRow(SQLModel, table=True):
    """A registry entry. National ID, name and bank account are stored only encrypted."""

    __tablename__ = "person"

    person_ref: str = Field(primary_key=True, max_length=64)
    national_id_enc: str
    name_enc: str
    district_code: str = Field(max_length=12)
    subdistrict_code: str = Field(max_length=12)
    bank_account_enc: str | None = None
    bank_account_fingerprint: str | None = Field(default=None, max_length=64)
    account_masked: str | None = Field(default=None, max_length=32)
    account_version: int = 0
    updated_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False, server_default=func.now()))


class RegistryPeriodRow(SQLModel, table=True):
    __tablename__ = "registry_period"
    __table_args__ = (UniqueConstraint("person_ref", "category", "valid_from", name="uq_registry_period"),)

    id: int | None = Field(default=None, primary_key=True)
    person_ref: str = Field(max_length=64, index=True)
    category: str = Field(max_length=32)
    valid_from: date
    valid_to: date | None = None


class ConsentRow(SQLModel, table=True):
    __tablename__ = "consent"

    id: UUID = Field(primary_key=True)
    person_ref: str = Field(max_length=64, index=True)
    signed_on: date
    revoked_on: date | None = None
    channel: str = Field(max_length=32)
    recorded_by: str = Field(max_length=64)
    sms_opt_out: bool = False
    created_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False, server_default=func.now()))


class ContactRow(SQLModel, table=True):
    """How to reach a person: the phone (encrypted at rest) and the SMS opt-out of their latest consent.

    `version` grows with every change and travels in ContactUpdated, so a late event never wins."""

    __tablename__ = "contact"

    person_ref: str = Field(primary_key=True, max_length=64)
    phone_enc: str | None = None
    phone_fingerprint: str | None = Field(default=None, max_length=64)
    phone_masked: str | None = Field(default=None, max_length=16)
    sms_opt_out: bool = False
    version: int = 0
    updated_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False, server_default=func.now()))


class ScreeningRow(SQLModel, table=True):
    """The latest decision on one settlement; parked ones are screened again when the person changes."""

    __tablename__ = "screening"

    settlement_id: UUID = Field(primary_key=True)
    person_ref: str = Field(max_length=64, index=True)
    discharge_date: date
    settlement: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    eligible: bool
    reason: str = Field(max_length=32)
    category: str | None = Field(default=None, max_length=32)
    parked: bool
    reversed: bool = False
    consent_lookback: str | None = Field(default=None, max_length=16)
    lookback_policy_id: str | None = Field(default=None, max_length=64)
    lookback_policy_version: int | None = None
    decided_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False, server_default=func.now()))


class PolicyTermsRow(SQLModel, table=True):
    """The terms of each published policy version eligibility applies (from policy.published), kept for good."""

    __tablename__ = "policy_terms"

    policy_id: str = Field(primary_key=True, max_length=64)
    version: int = Field(primary_key=True)
    region_code: str = Field(max_length=12, index=True)
    effective_from: date
    effective_to: date | None = None
    consent_lookback: str = Field(max_length=16)
    published_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
