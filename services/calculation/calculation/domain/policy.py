"""Versioned policy documents: per region and period, per category the deductible, ratios and caps."""

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator

from shared.contracts.types import Category, ConsentLookback, IsoDate, VisitType

MoneyText = Annotated[str, Field(pattern=r"^[0-9]{1,10}\.[0-9]{2}$")]
RatioText = Annotated[str, Field(pattern=r"^(0(\.[0-9]{1,4})?|1(\.0{1,4})?)$")]
LEVEL_KEYS = {"default", "1", "2", "3"}
MAX_VERSION = 2**31 - 1  # versions are stored and sent on as 32-bit integers


class NotCovered(ValueError):
    """The policy has no parameters for this category."""


class CategoryRule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    deductible: MoneyText
    cap: MoneyText
    per_settlement_cap: MoneyText | None = None
    ratios: dict[VisitType, dict[str, RatioText]]

    @field_validator("ratios")
    @classmethod
    def _every_visit_type_has_a_default(
        cls, ratios: dict[VisitType, dict[str, str]]
    ) -> dict[VisitType, dict[str, str]]:
        for visit in VisitType:
            if visit not in ratios or "default" not in ratios[visit]:
                raise ValueError(f"ratios.{visit.value} needs a 'default'")
            unknown = set(ratios[visit]) - LEVEL_KEYS
            if unknown:
                raise ValueError(f"ratios.{visit.value}: unknown keys {sorted(unknown)} (use default, 1, 2, 3)")
        return ratios


@dataclass(frozen=True)
class RuleAmounts:
    """A category's rule as the money rule computes with it: its texts read as Decimals, once per policy object
    (a published version never changes), not once per settlement."""

    deductible: Decimal
    cap: Decimal
    per_settlement_cap: Decimal | None
    ratios: dict[str, dict[str, Decimal]]

    def ratio(self, visit_type: str, hospital_level: int) -> Decimal:
        """The level's own ratio when the policy sets one, else the visit type's default."""
        ratios = self.ratios[VisitType(visit_type).value]
        return ratios.get(str(hospital_level), ratios["default"])

    @classmethod
    def of(cls, rule: CategoryRule) -> "RuleAmounts":
        return cls(deductible=Decimal(rule.deductible), cap=Decimal(rule.cap),
                   per_settlement_cap=Decimal(rule.per_settlement_cap) if rule.per_settlement_cap is not None
                   else None,
                   ratios={visit.value: {level: Decimal(r) for level, r in levels.items()}
                           for visit, levels in rule.ratios.items()})


class Policy(BaseModel):
    """One published version of a region's policy."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    policy_id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{1,63}$")
    version: int = Field(ge=1, le=MAX_VERSION)
    region_code: str = Field(pattern=r"^[0-9]{6}$")
    effective_from: IsoDate
    effective_to: IsoDate | None = None
    consent_lookback: ConsentLookback = Field(
        default=ConsentLookback.CALENDAR_YEAR,
        description="calendar_year: a consent signed in a year also covers that year's earlier settlements; none: "
        "only settlements on or after the signing date. Eligibility applies it (policy.published).")
    categories: dict[Category, CategoryRule]
    _amounts: dict[str, RuleAmounts] = PrivateAttr(default_factory=dict)

    @model_validator(mode="after")
    def _period(self) -> "Policy":
        if self.effective_to is not None and self.effective_to < self.effective_from:
            raise ValueError("effective_to is before effective_from")
        if not self.categories:
            raise ValueError("a policy covers at least one category")
        return self

    def rule(self, category: str) -> CategoryRule:
        try:
            return self.categories[Category(category)]
        except (ValueError, KeyError):
            raise NotCovered(f"policy {self.policy_id} v{self.version} has no category {category!r}") from None

    def amounts(self, category: str) -> RuleAmounts:
        """The category's rule with its amounts and ratios as Decimals (read once, then kept with the policy)."""
        found = self._amounts.get(category)
        if found is None:
            found = self._amounts[category] = RuleAmounts.of(self.rule(category))
        return found

    def ratio(self, category: str, visit_type: str, hospital_level: int) -> Decimal:
        """The level's own ratio when the policy sets one, else the visit type's default."""
        return self.amounts(category).ratio(visit_type, hospital_level)

    def covers(self, region_code: str, on: date) -> bool:
        return (self.region_code == region_code and self.effective_from <= on
                and (self.effective_to is None or on <= self.effective_to))


def select_policy(policies: Iterable[Policy], region_code: str, on: date) -> Policy | None:
    """The policy for a region on a date: among those covering it, the highest version."""
    candidates = [p for p in policies if p.covers(region_code, on)]
    return max(candidates, key=lambda p: (p.effective_from, p.version), default=None)
