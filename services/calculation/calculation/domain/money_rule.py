"""The money rule (DESIGN.md section 5), pure: every intermediate figure is kept so a clerk can see why.

    base               = max(0, policy_scope_amount - basic_insurance_paid - critical_illness_paid)
    deductible_left    = max(0, deductible - deductible_used[person, Y])
    deductible_applied = min(base, deductible_left)
    amount             = round_half_up((base - deductible_applied) * ratio, 0.01)
    amount             = min(amount, per_settlement_cap)          # when set
    assistance         = min(amount, max(0, cap - committed[person, Y]))

The figures keep these names everywhere: on the wire (`AssistanceFigures`), in calculation's API and in the case.
"""

from dataclasses import dataclass, replace
from datetime import date
from decimal import Decimal

from calculation.domain.policy import Policy
from shared.money import ZERO, to_money


class WrongLedgerYear(ValueError):
    """A settlement is always charged to the ledger of its discharge year."""


@dataclass(frozen=True)
class SettlementAmounts:
    """What the rule takes from a settlement: its amounts (the input), apart from the figures it gives."""

    policy_scope_amount: Decimal
    basic_insurance_paid: Decimal
    critical_illness_paid: Decimal
    visit_type: str
    hospital_level: int
    discharge_date: date


@dataclass(frozen=True)
class LedgerPosition:
    """What one person has used of one calendar year's deductible and cap."""

    year: int
    deductible_used: Decimal
    committed: Decimal


@dataclass(frozen=True)
class AssistanceCalculation:
    year: int
    category: str
    policy_id: str
    policy_version: int
    base: Decimal
    deductible: Decimal
    deductible_used_before: Decimal
    deductible_left: Decimal
    deductible_applied: Decimal
    ratio: Decimal
    amount_before_caps: Decimal
    per_settlement_cap: Decimal | None
    amount_after_settlement_cap: Decimal
    cap: Decimal
    committed_before: Decimal
    cap_left: Decimal
    assistance: Decimal

    @property
    def ledger_after(self) -> LedgerPosition:
        return LedgerPosition(self.year, self.deductible_used_before + self.deductible_applied,
                              self.committed_before + self.assistance)


def calculate(amounts: SettlementAmounts, category: str, policy: Policy, ledger: LedgerPosition
              ) -> AssistanceCalculation:
    """The assistance for one eligible settlement, given the person's ledger for the discharge year."""
    year = amounts.discharge_date.year
    if ledger.year != year:
        raise WrongLedgerYear(f"ledger of {ledger.year} for a settlement discharged in {year}")
    rule = policy.amounts(category)
    deductible, cap, per_settlement_cap = rule.deductible, rule.cap, rule.per_settlement_cap
    base = max(ZERO, amounts.policy_scope_amount - amounts.basic_insurance_paid - amounts.critical_illness_paid)
    deductible_left = max(ZERO, deductible - ledger.deductible_used)
    deductible_applied = min(base, deductible_left)
    ratio = rule.ratio(amounts.visit_type, amounts.hospital_level)
    amount_before_caps = to_money((base - deductible_applied) * ratio)
    amount = min(amount_before_caps, per_settlement_cap) if per_settlement_cap is not None else amount_before_caps
    cap_left = max(ZERO, cap - ledger.committed)
    return AssistanceCalculation(
        year=year, category=category, policy_id=policy.policy_id, policy_version=policy.version,
        base=to_money(base), deductible=to_money(deductible), deductible_used_before=to_money(ledger.deductible_used),
        deductible_left=to_money(deductible_left), deductible_applied=to_money(deductible_applied), ratio=ratio,
        amount_before_caps=amount_before_caps, per_settlement_cap=per_settlement_cap,
        amount_after_settlement_cap=to_money(amount), cap=to_money(cap),
        committed_before=to_money(ledger.committed), cap_left=to_money(cap_left),
        assistance=to_money(min(amount, cap_left)),
    )


def release(ledger: LedgerPosition, deductible_applied: Decimal, assistance: Decimal) -> LedgerPosition:
    """Give back a rejected or reversed calculation's share (later settlements are not recomputed)."""
    return replace(ledger, deductible_used=max(ZERO, ledger.deductible_used - deductible_applied),
                   committed=max(ZERO, ledger.committed - assistance))
