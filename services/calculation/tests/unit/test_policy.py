"""Policy documents: selection by region and date, and refusal of invalid documents."""

from datetime import date
from decimal import Decimal

import pytest
from calculation.domain.policy import Policy, select_policy
from calculation.policies import demo_policies
from pydantic import ValidationError

RULE = {"deductible": "0.00", "cap": "100.00",
        "ratios": {"inpatient": {"default": "0.80", "1": "0.90"}, "outpatient_chronic": {"default": "0.70"},
                   "outpatient": {"default": "0.50"}}}


def policy(policy_id: str = "pp", version: int = 1, region: str = "310110", start: str = "2026-01-01",
           end: str | None = None, rule: dict | None = None) -> Policy:  # type: ignore[type-arg]
    return Policy.model_validate({"policy_id": policy_id, "version": version, "region_code": region,
                                  "effective_from": start, "effective_to": end,
                                  "categories": {"subsistence": rule or RULE}})


@pytest.mark.parametrize(
    ("region", "on", "expected"),
    [
        ("310110", date(2026, 3, 1), ("pp", 2)),  # the highest version covering the date
        ("310110", date(2025, 12, 31), ("old", 1)),
        ("310107", date(2026, 3, 1), ("qq", 1)),
        ("310101", date(2026, 3, 1), None),  # no policy for the region
        ("310107", date(2027, 1, 1), None),  # after the period
    ],
)
def test_select_policy(region: str, on: date, expected: tuple[str, int] | None) -> None:
    policies = [policy(version=1), policy(version=2), policy("old", 1, start="2025-01-01", end="2025-12-31"),
                policy("qq", 1, region="310107", end="2026-12-31")]
    chosen = select_policy(policies, region, on)
    assert ((chosen.policy_id, chosen.version) if chosen else None) == expected


def test_ratio_by_hospital_level_falls_back_to_default() -> None:
    p = policy()
    assert p.ratio("subsistence", "inpatient", 1) == Decimal("0.90")
    assert p.ratio("subsistence", "inpatient", 2) == Decimal("0.80")


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"ratios": {**RULE["ratios"], "inpatient": {"default": "1.20"}}}, "ratio above 1"),
        ({"cap": "100.005"}, "three decimal places"),
        ({"deductible": "-1.00"}, "negative"),
        ({"ratios": {"inpatient": {"default": "0.8"}, "outpatient": {"default": "0.5"}}}, "visit type missing"),
        ({"ratios": {**RULE["ratios"], "outpatient": {"4": "0.5", "default": "0.5"}}}, "unknown hospital level"),
        ({"bonus": "1.00"}, "unknown field"),
    ],
)
def test_invalid_policies_are_refused(change: dict, why: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(ValidationError):
        policy(rule={**RULE, **change})


def test_period_must_not_end_before_it_starts() -> None:
    with pytest.raises(ValidationError):
        policy(start="2026-06-01", end="2026-05-31")


def test_demo_policies_load_and_cover_both_districts() -> None:
    policies = demo_policies()
    assert {p.region_code for p in policies} == {"310110", "310107"}
    assert all(select_policy(policies, p.region_code, date(2026, 6, 1)) for p in policies)


@pytest.mark.parametrize("version", [0, 2**31, 127981033549])
def test_versions_outside_what_is_stored_are_refused(version: int) -> None:
    with pytest.raises(ValidationError):
        policy(version=version)


def test_rule_amounts_are_the_policy_texts_as_decimals_for_every_category_visit_and_level() -> None:
    for p in demo_policies():
        for category, rule in p.categories.items():
            amounts = p.amounts(category.value)
            assert amounts is p.amounts(category.value)  # read once, kept with the policy
            assert (amounts.deductible, amounts.cap, amounts.per_settlement_cap) == (
                Decimal(rule.deductible), Decimal(rule.cap),
                None if rule.per_settlement_cap is None else Decimal(rule.per_settlement_cap))
            for visit, levels in rule.ratios.items():
                for level in (1, 2, 3):
                    assert p.ratio(category.value, visit.value, level) == Decimal(
                        levels.get(str(level), levels["default"]))
