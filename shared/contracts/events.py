"""Every event's payload (`data` of the envelope). Past tense: these are facts.

Privacy: no national ID, name or bank account appears here in plaintext, ever.
"""

from datetime import date, datetime
from typing import Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from shared.contracts.types import Category, Money, Ratio, VisitType


class EventData(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SettlementReceived(EventData):
    """A hospital settlement accepted by intake (topic settlement.received)."""

    settlement_id: UUID
    hospital_id: str = Field(max_length=32)
    hospital_settlement_id: str = Field(max_length=64)
    hospital_level: int = Field(ge=1, le=3)
    visit_type: VisitType
    admission_date: date
    discharge_date: date
    total_amount: Money
    policy_scope_amount: Money
    basic_insurance_paid: Money
    critical_illness_paid: Money


class SettlementReversed(EventData):
    """The hospital voided a settlement. Flows through every topic so each service can undo its part."""

    settlement_id: UUID
    hospital_id: str = Field(max_length=32)
    hospital_settlement_id: str = Field(max_length=64)
    reversed_at: datetime
    reason: str | None = Field(default=None, max_length=64)


class EligibilityDecided(EventData):
    """Screening result for one settlement (topic eligibility.decided). Ineligible ones are parked."""

    settlement: SettlementReceived
    eligible: bool
    reason: Literal["eligible", "not_registered", "category_not_valid_on_date", "no_consent", "consent_revoked"]
    category: Category | None = None
    district_code: str | None = Field(default=None, max_length=12)
    subdistrict_code: str | None = Field(default=None, max_length=12)
    rescreened: bool = False


class AssistanceCalculated(EventData):
    """The assistance for one eligible settlement, with every figure behind it (topic assistance.calculated)."""

    calculation_id: UUID
    settlement_id: UUID
    hospital_id: str
    category: Category
    district_code: str
    subdistrict_code: str
    visit_type: VisitType
    hospital_level: int = Field(ge=1, le=3)
    discharge_date: date
    year: int
    policy_id: str
    policy_version: int
    policy_scope_amount: Money
    basic_insurance_paid: Money
    critical_illness_paid: Money
    base: Money
    deductible_applied: Money
    ratio: Ratio
    amount_before_caps: Money
    assistance: Money
    breakdown: dict[str, str] = Field(description="Every intermediate figure, by name, as decimal strings.")


class AssistanceReversed(EventData):
    """A calculated settlement was reversed by the hospital. `recovery_id` is set when money had been paid."""

    calculation_id: UUID
    settlement_id: UUID
    released_assistance: Money
    recovery_id: UUID | None = None


class CaseDecided(EventData):
    """A case reached a final decision (topic case.decided)."""

    case_id: UUID
    calculation_id: UUID
    settlement_id: UUID
    decision: Literal["approved", "rejected", "cancelled"]
    reason_code: str | None = None
    amount: Money
    district_code: str
    subdistrict_code: str
    decided_at: datetime


class TransferSettled(EventData):
    """The bank's final word on a payment (topic transfer.settled)."""

    payment_id: UUID
    case_id: UUID
    calculation_id: UUID
    settlement_id: UUID
    status: Literal["settled", "failed", "cancelled"]
    reason: str | None = None
    amount: Money
    bank_reference: str | None = None
    attempt: int = 1


class PayeeAccountUpdated(EventData):
    """The registry has a (new) bank account for a person (topic registry.payee).

    The account and name travel only encrypted (AES-GCM under the payee transport key shared by
    eligibility and disbursement); `account_masked` is for display.
    """

    account_version: int = Field(ge=1)
    payee_ciphertext: str
    account_masked: str = Field(max_length=32)
