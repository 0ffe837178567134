"""Earlier versions of event payloads, kept so a message still on a topic (or stored) can be read.

Each earlier version has its frozen model and an upcaster to the next version. `upcast` walks a payload from the
version it was written in up to the current one; consumers only ever see the current model
(docs/decisions/0016-event-schema-versions.md).
"""

from collections.abc import Callable, Mapping
from datetime import date
from typing import Any, ClassVar, Literal
from uuid import UUID

from pydantic import Field

from shared.contracts.events import EventData, SettlementReceived
from shared.contracts.types import Category, Money, Ratio, VisitType

Payload = dict[str, Any]


class UnknownSchemaVersion(ValueError):
    """A payload written by a newer producer than this code knows, or an older one with no upcaster."""


class AssistanceCalculatedV1(EventData):
    """AssistanceCalculated as version 1 sent it: some figures at the top level, all of them again as strings in
    `breakdown` under short names (`ded_left`, `ded_applied`), an absent cap as ""."""

    schema_version: ClassVar[int] = 1

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


def figures_from_breakdown(breakdown: Mapping[str, Any], inputs: Mapping[str, Any]) -> Payload:
    """Version 2's `figures` from a version-1 `breakdown` and the settlement's three input amounts (also what
    calculation's and approval's migrations use for rows written before version 2)."""
    cap = breakdown["per_settlement_cap"]
    return {
        "policy_scope_amount": inputs["policy_scope_amount"], "basic_insurance_paid": inputs["basic_insurance_paid"],
        "critical_illness_paid": inputs["critical_illness_paid"], "base": breakdown["base"],
        "deductible": breakdown["deductible"], "deductible_used_before": breakdown["deductible_used_before"],
        "deductible_left": breakdown["ded_left"], "deductible_applied": breakdown["ded_applied"],
        "ratio": breakdown["ratio"], "amount_before_caps": breakdown["amount_before_caps"],
        "per_settlement_cap": cap if cap not in ("", None) else None,
        "amount_after_settlement_cap": breakdown["amount_after_settlement_cap"], "cap": breakdown["cap"],
        "committed_before": breakdown["committed_before"], "cap_left": breakdown["cap_left"],
        "assistance": breakdown["assistance"],
    }


def _assistance_calculated_1_to_2(data: Payload) -> Payload:
    v1 = AssistanceCalculatedV1.model_validate(data).model_dump(mode="json")
    kept = ("calculation_id", "settlement_id", "hospital_id", "category", "district_code", "subdistrict_code",
            "visit_type", "hospital_level", "discharge_date", "year", "policy_id", "policy_version")
    return {**{k: v1[k] for k in kept}, "figures": figures_from_breakdown(v1["breakdown"], v1)}


class EligibilityDecidedV1(EventData):
    """EligibilityDecided as version 1 sent it: without saying which consent lookback applied (it was a setting
    of the eligibility service then)."""

    schema_version: ClassVar[int] = 1

    settlement: SettlementReceived
    eligible: bool
    reason: Literal["eligible", "not_registered", "category_not_valid_on_date", "no_consent", "consent_revoked"]
    category: Category | None = None
    district_code: str | None = Field(default=None, max_length=12)
    subdistrict_code: str | None = Field(default=None, max_length=12)
    rescreened: bool = False


def _eligibility_decided_1_to_2(data: Payload) -> Payload:
    v1 = EligibilityDecidedV1.model_validate(data).model_dump(mode="json")
    return {**v1, "consent_lookback": None, "lookback_policy_id": None, "lookback_policy_version": None}


UPCASTERS: dict[tuple[str, int], Callable[[Payload], Payload]] = {
    ("AssistanceCalculated", 1): _assistance_calculated_1_to_2,
    ("EligibilityDecided", 1): _eligibility_decided_1_to_2,
}
"""(event type, version) -> the function that turns that version's payload into the next version's."""

EARLIER_VERSIONS: dict[str, tuple[type[EventData], ...]] = {
    "AssistanceCalculated": (AssistanceCalculatedV1,),
    "EligibilityDecided": (EligibilityDecidedV1,),
}
"""Event type -> the models of its earlier versions, for the contract files."""


def upcast(event_type: str, version: int, current: int, data: Payload) -> Payload:
    """`data`, written as `version` of `event_type`, in the shape of version `current`."""
    if version > current:
        raise UnknownSchemaVersion(f"{event_type} v{version} is newer than this code (v{current})")
    while version < current:
        step = UPCASTERS.get((event_type, version))
        if step is None:
            raise UnknownSchemaVersion(f"{event_type} v{version} cannot be read as v{current}")
        data, version = step(data), version + 1
    return data
