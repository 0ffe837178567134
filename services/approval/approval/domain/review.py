"""What a reviewer reads on a case, pure: the calculation in plain words, the person's year so far, the flags.

The words are Chinese first, with an English rendering; figures keep two places with thousands separators,
so the sentence reads like the settlement sheet it explains.
"""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from enum import StrEnum

ZERO = Decimal("0.00")


def yuan(value: Decimal) -> str:
    return f"{value:,.2f}"


def percent(ratio: Decimal) -> str:
    text = f"{ratio * 100:f}"
    return (text.rstrip("0").rstrip(".") if "." in text else text) + "%"


@dataclass(frozen=True)
class Figures:
    """One calculation's figures, as AssistanceCalculated carries them."""

    policy_scope_amount: Decimal
    basic_insurance_paid: Decimal
    critical_illness_paid: Decimal
    base: Decimal
    deductible_left: Decimal
    deductible_applied: Decimal
    ratio: Decimal
    amount_before_caps: Decimal
    per_settlement_cap: Decimal | None
    amount_after_settlement_cap: Decimal
    cap_left: Decimal
    assistance: Decimal

    @classmethod
    def of(cls, figures: Mapping[str, object]) -> "Figures":
        """From the event's `figures` (AssistanceFigures as JSON: decimal strings, null for an absent cap)."""

        def money(name: str) -> Decimal:
            return Decimal(str(figures[name]))

        cap = figures.get("per_settlement_cap")
        return cls(
            policy_scope_amount=money("policy_scope_amount"), basic_insurance_paid=money("basic_insurance_paid"),
            critical_illness_paid=money("critical_illness_paid"), base=money("base"),
            deductible_left=money("deductible_left"), deductible_applied=money("deductible_applied"),
            ratio=money("ratio"), amount_before_caps=money("amount_before_caps"),
            per_settlement_cap=None if cap is None else Decimal(str(cap)),
            amount_after_settlement_cap=money("amount_after_settlement_cap"), cap_left=money("cap_left"),
            assistance=money("assistance"))


@dataclass(frozen=True)
class Explanation:
    zh: str
    en: str


def explain(f: Figures) -> Explanation:
    """The calculation figure by figure in plain words, e.g. 范围内费用 10,000.00 − 基本医保 6,000.00 − ..."""
    zh = [f"范围内费用 {yuan(f.policy_scope_amount)} − 基本医保 {yuan(f.basic_insurance_paid)} − "
          f"大病保险 {yuan(f.critical_illness_paid)} = {yuan(f.base)}"]
    en = [f"policy-scope amount {yuan(f.policy_scope_amount)} − basic insurance {yuan(f.basic_insurance_paid)} − "
          f"critical-illness insurance {yuan(f.critical_illness_paid)} = {yuan(f.base)}"]
    if f.deductible_applied == f.deductible_left:
        zh.append(f"起付线余额 {yuan(f.deductible_left)}")
        en.append(f"deductible left {yuan(f.deductible_left)}")
    else:
        zh.append(f"起付线余额 {yuan(f.deductible_left)}，本次扣除 {yuan(f.deductible_applied)}")
        en.append(f"deductible left {yuan(f.deductible_left)}, {yuan(f.deductible_applied)} applied here")
    formula = f"({yuan(f.base)} − {yuan(f.deductible_applied)}) × {percent(f.ratio)} = {yuan(f.amount_before_caps)}"
    zh.append(formula)
    en.append(formula)
    if f.per_settlement_cap is not None and f.amount_after_settlement_cap < f.amount_before_caps:
        zh.append(f"单次限额 {yuan(f.per_settlement_cap)}，按 {yuan(f.amount_after_settlement_cap)} 计")
        en.append(f"per-settlement cap {yuan(f.per_settlement_cap)}, so {yuan(f.amount_after_settlement_cap)}")
    zh.append(f"年度限额余 {yuan(f.cap_left)}")
    en.append(f"annual cap left {yuan(f.cap_left)}")
    if f.assistance < f.amount_after_settlement_cap:
        zh.append(f"超出年度限额，救助 {yuan(f.assistance)}")
        en.append(f"the annual cap limits the assistance to {yuan(f.assistance)}")
    else:
        zh.append(f"救助 {yuan(f.assistance)}")
        en.append(f"assistance {yuan(f.assistance)}")
    return Explanation("；".join(zh), "; ".join(en))


@dataclass(frozen=True)
class YearEntry:
    """What one calculation took of its year's ledger; `released` once rejected or reversed before payment."""

    discharge_date: date
    deductible_applied: Decimal
    assistance: Decimal
    deductible: Decimal
    cap: Decimal
    released: bool


@dataclass(frozen=True)
class YearSoFar:
    year: int
    deductible: Decimal
    deductible_used: Decimal
    committed: Decimal
    cap: Decimal

    @property
    def deductible_left(self) -> Decimal:
        return max(ZERO, self.deductible - self.deductible_used)

    @property
    def cap_left(self) -> Decimal:
        return max(ZERO, self.cap - self.committed)


def year_so_far(year: int, entries: Iterable[YearEntry]) -> YearSoFar:
    """The ledger as calculation keeps it: what every calculation of the year took, less what was given back.
    Deductible and cap are those of the year's latest calculation (the policy in force)."""
    entries = sorted(entries, key=lambda e: e.discharge_date)
    kept = [e for e in entries if not e.released]
    latest = entries[-1] if entries else None
    return YearSoFar(year=year, deductible=latest.deductible if latest else ZERO,
                     deductible_used=sum((e.deductible_applied for e in kept), ZERO),
                     committed=sum((e.assistance for e in kept), ZERO), cap=latest.cap if latest else ZERO)


class Flag(StrEnum):
    LARGE_AMOUNT = "large_amount"
    FREQUENT_SETTLEMENTS = "frequent_settlements"
    REVERSAL_PENDING = "reversal_pending"
    ACCOUNT_CHANGED_RECENTLY = "account_changed_recently"
    PAYMENT_FAILED_BEFORE = "payment_failed_before"


FLAG_LABELS: dict[Flag, tuple[str, str]] = {
    Flag.LARGE_AMOUNT: ("大额救助", "large amount"),
    Flag.FREQUENT_SETTLEMENTS: ("短期内多次结算", "many settlements in a short time"),
    Flag.REVERSAL_PENDING: ("冲销待追回", "reversal pending"),
    Flag.ACCOUNT_CHANGED_RECENTLY: ("近期变更银行账户", "bank account changed recently"),
    Flag.PAYMENT_FAILED_BEFORE: ("曾有支付失败", "a payment failed before"),
}


@dataclass(frozen=True)
class FlagRules:
    """When a case is flagged. The large-amount threshold is the deployment's policy (ApprovalSettings)."""

    large_amount: Decimal = Decimal("5000.00")
    frequent_count: int = 3
    frequent_days: int = 30
    account_change_days: int = 30

    def frequent_window(self, discharge: date) -> tuple[date, date]:
        return discharge - timedelta(days=self.frequent_days), discharge + timedelta(days=self.frequent_days)

    def account_changed_since(self, now: datetime) -> datetime:
        return now - timedelta(days=self.account_change_days)
