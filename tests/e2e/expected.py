"""The money rule written again, from DESIGN.md section 5, straight from the policy files' JSON.

Deliberately independent of services/calculation: the end-to-end tests compare the system's figures
with these.
"""

import json
from collections import defaultdict
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

POLICY_DIR = Path(__file__).resolve().parents[2] / "services/calculation/calculation/policies"


def _policies() -> dict[str, dict[str, Any]]:
    return {doc["region_code"]: doc for doc in (json.loads(p.read_text()) for p in POLICY_DIR.glob("*.json"))}


class ExpectedLedger:
    def __init__(self) -> None:
        self.policies = _policies()
        self.deductible_used: dict[tuple[str, int], Decimal] = defaultdict(Decimal)
        self.committed: dict[tuple[str, int], Decimal] = defaultdict(Decimal)

    def assistance(self, person: str, district: str, category: str, s: dict[str, Any]) -> Decimal:
        rule = self.policies[district]["categories"][category]
        year = date.fromisoformat(s["discharge_date"]).year
        key = (person, year)
        base = max(Decimal(0), Decimal(s["policy_scope_amount"]) - Decimal(s["basic_insurance_paid"])
                   - Decimal(s["critical_illness_paid"]))
        ded_applied = min(base, max(Decimal(0), Decimal(rule["deductible"]) - self.deductible_used[key]))
        ratios = rule["ratios"][s["visit_type"]]
        ratio = Decimal(ratios.get(str(s["hospital_level"]), ratios["default"]))
        amount = ((base - ded_applied) * ratio).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
        if rule.get("per_settlement_cap"):
            amount = min(amount, Decimal(rule["per_settlement_cap"]))
        paid = min(amount, max(Decimal(0), Decimal(rule["cap"]) - self.committed[key]))
        self.deductible_used[key] += ded_applied
        self.committed[key] += paid
        return paid

    def give_back(self, person: str, year: int, ded_applied: Decimal, assistance: Decimal) -> None:
        self.deductible_used[(person, year)] -= ded_applied
        self.committed[(person, year)] -= assistance
