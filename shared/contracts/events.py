"""Every event's payload (`data` of the envelope). Past tense: these are facts.

Privacy: no national ID, name, bank account or phone number appears here in plaintext, ever.
"""

from collections.abc import Sequence
from datetime import date, datetime
from typing import ClassVar, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from shared.contracts.types import PERSON_REF_PATTERN, Category, ConsentLookback, Money, Ratio, VisitType


class EventData(BaseModel):
    """An event's payload. `schema_version` goes up whenever the payload's shape changes (docs/decisions/0016);
    an older version still on a topic is upcast when read (shared/contracts/versions.py)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: ClassVar[int] = 1


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
    """Screening result for one settlement (topic eligibility.decided). Ineligible ones are parked.

    Version 2 says which consent lookback applied and from which policy version (`consent_lookback`,
    `lookback_policy_id`, `lookback_policy_version`). Version 1 is upcast with all three null."""

    schema_version: ClassVar[int] = 2

    settlement: SettlementReceived
    eligible: bool
    reason: Literal["eligible", "not_registered", "category_not_valid_on_date", "no_consent", "consent_revoked"]
    category: Category | None = None
    district_code: str | None = Field(default=None, max_length=12)
    subdistrict_code: str | None = Field(default=None, max_length=12)
    rescreened: bool = False
    consent_lookback: ConsentLookback | None = Field(
        default=None, description="The lookback the consents were judged by; null when they were not looked at "
        "(not registered, or no category valid on the date).")
    lookback_policy_id: str | None = Field(
        default=None, max_length=64, description="The policy the lookback came from; null when no policy of the "
        "person's district covered the date yet, and the strict default (none) applied.")
    lookback_policy_version: int | None = Field(default=None, ge=1)


class PolicyPublished(EventData):
    """A version of a region's policy was published (topic policy.published). Carries the terms other services
    apply themselves (eligibility: the consent lookback); the money rule's parameters stay in calculation.
    The envelope's key is the region's (`region_key`), so one region's versions stay in order."""

    policy_id: str = Field(max_length=64)
    policy_version: int = Field(ge=1)
    region_code: str = Field(max_length=12)
    effective_from: date
    effective_to: date | None = None
    consent_lookback: ConsentLookback
    published_at: datetime


class AssistanceFigures(EventData):
    """Every figure of the money rule (DESIGN.md section 5), in the rule's order. Each figure has this one name in
    the event, in calculation's API and in approval's case."""

    policy_scope_amount: Money
    basic_insurance_paid: Money
    critical_illness_paid: Money
    base: Money = Field(description="max(0, policy_scope_amount - basic_insurance_paid - critical_illness_paid)")
    deductible: Money = Field(description="The category's annual deductible.")
    deductible_used_before: Money = Field(description="Deductible the person had used this year before.")
    deductible_left: Money = Field(description="max(0, deductible - deductible_used_before)")
    deductible_applied: Money = Field(description="min(base, deductible_left)")
    ratio: Ratio = Field(description="The ratio for the category, visit type and hospital level.")
    amount_before_caps: Money = Field(description="round_half_up((base - deductible_applied) x ratio, 0.01)")
    per_settlement_cap: Money | None = Field(description="null when the policy sets no per-settlement cap.")
    amount_after_settlement_cap: Money
    cap: Money = Field(description="The category's annual cap.")
    committed_before: Money = Field(description="Assistance committed to the person this year before.")
    cap_left: Money = Field(description="max(0, cap - committed_before)")
    assistance: Money = Field(description="min(amount_after_settlement_cap, cap_left)")


class AssistanceCalculated(EventData):
    """The assistance for one eligible settlement, with every figure behind it (topic assistance.calculated).

    Version 2: the figures are one typed object (`figures`) instead of top-level copies plus a `breakdown` of
    strings; absent caps are null. Version 1 is upcast on read."""

    schema_version: ClassVar[int] = 2

    calculation_id: UUID
    settlement_id: UUID
    hospital_id: str
    category: Category
    district_code: str
    subdistrict_code: str
    visit_type: VisitType
    hospital_level: int = Field(ge=1, le=3)
    hospital_settlement_id: str | None = Field(
        default=None, max_length=64, description="The hospital's own number; null when upcast from version 1.")
    admission_date: date | None = Field(default=None, description="null when upcast from version 1.")
    discharge_date: date
    year: int = Field(ge=1900, le=9999)
    policy_id: str
    policy_version: int = Field(ge=1)
    total_amount: Money | None = Field(default=None, description="The bill's total; null when upcast from version 1.")
    figures: AssistanceFigures


class AssistanceReversed(EventData):
    """A calculated settlement was reversed by the hospital. `recovery_id` is set when money had been paid."""

    calculation_id: UUID
    settlement_id: UUID
    released_assistance: Money
    recovery_id: UUID | None = None


class RecoveryOpened(EventData):
    """Money was paid for a settlement the hospital reversed: the district is to recover `amount`
    (topic assistance.calculated). Follows the AssistanceReversed whose `recovery_id` it opens, or, when the
    reversal overtook the payment, the payment's TransferSettled."""

    recovery_id: UUID
    calculation_id: UUID
    settlement_id: UUID
    district_code: str = Field(max_length=12)
    amount: Money
    opened_at: datetime


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
    account_version: int | None = Field(default=None, ge=1)
    """The registry's version of the account this attempt went to (PayeeAccountUpdated.account_version), so a
    message about it names that account, not one the registry sent later; null when no attempt was sent."""


class PayeeAccountUpdated(EventData):
    """The registry has a (new) bank account for a person (topic registry.payee). Eligibility publishes these in
    PayeeAccountsUpdated (many persons an event); an event of this one-person shape is still read.

    The account and name travel only encrypted (AES-GCM under the payee transport key shared by
    eligibility and disbursement); `account_masked` is for display.
    """

    account_version: int = Field(ge=1)
    payee_ciphertext: str
    account_masked: str = Field(max_length=32)


class CategoryPeriod(EventData):
    category: Category
    valid_from: date
    valid_to: date | None = None


class ConsentPeriod(EventData):
    signed_on: date
    revoked_on: date | None = None


class PersonRecorded(EventData):
    """The registry's entry for a person as it now stands (topic registry.person), for the reviewer's case view.

    Eligibility publishes these entries in PersonsRecorded (many persons an event) after every registry import
    and consent change; an event of this one-person shape, keyed by the person, is still read. Name and
    national ID travel only encrypted (AES-GCM under the case-view transport key that only eligibility and
    approval hold, the person_ref as associated data); the bank account does not travel here at all, only its
    version.
    """

    identity_ciphertext: str
    district_code: str = Field(max_length=12)
    subdistrict_code: str = Field(max_length=12)
    periods: list[CategoryPeriod] = Field(max_length=100)
    consents: list[ConsentPeriod] = Field(max_length=100)
    account_version: int = Field(ge=0)


PERSONS_PER_EVENT = 500
"""The most persons, accounts or contacts one registry event carries (docs/decisions/0033); fewer when the event
would pass MAX_REGISTRY_EVENT_BYTES."""
MAX_REGISTRY_EVENT_BYTES = 256 * 1024
"""A registry event's envelope stays under this many bytes: a quarter of Kafka's 1 MiB message limit."""


class RegistryChunk(EventData):
    """An event about many persons at once (one per import chunk, docs/decisions/0033). It travels under
    `topics.REGISTRY_KEY`, so every event of its topic stays in one partition and in order; each entry names its
    person. The per-person event it replaces is still read (`per_person`)."""

    ENTRIES: ClassVar[str]
    """The field that lists the entries."""

    def entries(self) -> Sequence[tuple[str, EventData]]:
        raise NotImplementedError


class RecordedPerson(PersonRecorded):
    """One person's entry in PersonsRecorded."""

    person_ref: str = Field(pattern=PERSON_REF_PATTERN)


class PersonsRecorded(RegistryChunk):
    """The registry's entries as they now stand for many persons (topic registry.person): what PersonRecorded
    says of one person, for up to PERSONS_PER_EVENT of them."""

    ENTRIES: ClassVar[str] = "persons"
    persons: list[RecordedPerson] = Field(min_length=1, max_length=PERSONS_PER_EVENT)

    def entries(self) -> Sequence[tuple[str, EventData]]:
        return [(p.person_ref, p) for p in self.persons]
class ContactUpdated(EventData):
    """How a person can be told about their case changed (topic registry.contact): a new phone number from the
    registry, or the SMS opt-out recorded with their consent. Always the whole current state, versioned.
    Eligibility publishes these in ContactsUpdated (many persons an event); this one-person shape is still read.

    The phone number travels only encrypted (AES-GCM under the contact transport key shared by eligibility
    and notification, the person_ref as associated data); `phone_masked` is for display.
    """

    contact_version: int = Field(ge=1)
    phone_ciphertext: str | None = None
    phone_masked: str | None = Field(default=None, max_length=16)
    sms_opt_out: bool = False


class UpdatedPayeeAccount(PayeeAccountUpdated):
    """One person's new account in PayeeAccountsUpdated (encrypted with the person_ref as associated data)."""

    person_ref: str = Field(pattern=PERSON_REF_PATTERN)


class PayeeAccountsUpdated(RegistryChunk):
    """New bank accounts for many persons (topic registry.payee): what PayeeAccountUpdated says of one person,
    for up to PERSONS_PER_EVENT of them."""

    ENTRIES: ClassVar[str] = "accounts"
    accounts: list[UpdatedPayeeAccount] = Field(min_length=1, max_length=PERSONS_PER_EVENT)

    def entries(self) -> Sequence[tuple[str, EventData]]:
        return [(a.person_ref, a) for a in self.accounts]


class UpdatedContact(ContactUpdated):
    """One person's contact in ContactsUpdated (the phone encrypted with the person_ref as associated data)."""

    person_ref: str = Field(pattern=PERSON_REF_PATTERN)


class ContactsUpdated(RegistryChunk):
    """Changed contacts of many persons (topic registry.contact): what ContactUpdated says of one person, for up
    to PERSONS_PER_EVENT of them."""

    ENTRIES: ClassVar[str] = "contacts"
    contacts: list[UpdatedContact] = Field(min_length=1, max_length=PERSONS_PER_EVENT)

    def entries(self) -> Sequence[tuple[str, EventData]]:
        return [(c.person_ref, c) for c in self.contacts]


def per_person(key: str, data: EventData) -> Sequence[tuple[str, EventData]]:
    """A registry event's facts person by person: a chunk's entries, or the one fact of an event in the earlier
    per-person shape (PersonRecorded, PayeeAccountUpdated, ContactUpdated), whose key is the person's ref."""
    return data.entries() if isinstance(data, RegistryChunk) else [(key, data)]
