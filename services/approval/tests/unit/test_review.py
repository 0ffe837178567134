"""The case view's pure parts: the calculation in plain words, and the year so far as the ledger keeps it."""

from datetime import date
from decimal import Decimal as D

import pytest
from approval.domain.review import Figures, YearEntry, explain, percent, year_so_far


def figures(**over: str | None) -> Figures:
    base = {"policy_scope_amount": "10000.00", "basic_insurance_paid": "6000.00", "critical_illness_paid": "1500.00",
            "base": "2500.00", "deductible_left": "500.00", "deductible_applied": "500.00", "ratio": "0.70",
            "amount_before_caps": "1400.00", "per_settlement_cap": None, "amount_after_settlement_cap": "1400.00",
            "cap_left": "38600.00", "assistance": "1400.00"}
    base.update(over)
    return Figures(**{k: None if v is None else D(v) for k, v in base.items()})  # type: ignore[arg-type]


@pytest.mark.parametrize(("over", "zh", "en_tail"), [
    ({}, "范围内费用 10,000.00 − 基本医保 6,000.00 − 大病保险 1,500.00 = 2,500.00；起付线余额 500.00；"
         "(2,500.00 − 500.00) × 70% = 1,400.00；年度限额余 38,600.00；救助 1,400.00", "assistance 1,400.00"),
    ({"deductible_left": "3000.00", "deductible_applied": "2500.00", "amount_before_caps": "0.00",
      "amount_after_settlement_cap": "0.00", "assistance": "0.00"},
     "范围内费用 10,000.00 − 基本医保 6,000.00 − 大病保险 1,500.00 = 2,500.00；起付线余额 3,000.00，本次扣除 2,500.00；"
     "(2,500.00 − 2,500.00) × 70% = 0.00；年度限额余 38,600.00；救助 0.00", "assistance 0.00"),
    ({"per_settlement_cap": "1000.00", "amount_after_settlement_cap": "1000.00", "assistance": "1000.00"},
     "范围内费用 10,000.00 − 基本医保 6,000.00 − 大病保险 1,500.00 = 2,500.00；起付线余额 500.00；"
     "(2,500.00 − 500.00) × 70% = 1,400.00；单次限额 1,000.00，按 1,000.00 计；年度限额余 38,600.00；救助 1,000.00",
     "assistance 1,000.00"),
    ({"cap_left": "300.00", "assistance": "300.00"},
     "范围内费用 10,000.00 − 基本医保 6,000.00 − 大病保险 1,500.00 = 2,500.00；起付线余额 500.00；"
     "(2,500.00 − 500.00) × 70% = 1,400.00；年度限额余 300.00；超出年度限额，救助 300.00",
     "the annual cap limits the assistance to 300.00"),
])
def test_explanation_in_plain_words(over: dict[str, str], zh: str, en_tail: str) -> None:
    words = explain(figures(**over))
    assert words.zh == zh
    assert words.en.startswith("policy-scope amount 10,000.00 − basic insurance 6,000.00 − critical-illness")
    assert words.en.endswith(en_tail)


@pytest.mark.parametrize(("ratio", "text"), [("0.70", "70%"), ("1.00", "100%"), ("0.755", "75.5%"), ("0", "0%")])
def test_percent(ratio: str, text: str) -> None:
    assert percent(D(ratio)) == text


def test_figures_read_the_events_figures() -> None:
    event = {"policy_scope_amount": "10000.00", "basic_insurance_paid": "6000.00", "critical_illness_paid": "1500.00",
             "base": "2500.00", "deductible": "500.00", "deductible_used_before": "0.00", "deductible_left": "500.00",
             "deductible_applied": "500.00", "ratio": "0.70", "amount_before_caps": "1400.00",
             "per_settlement_cap": None, "amount_after_settlement_cap": "1400.00", "cap": "40000.00",
             "committed_before": "1400.00", "cap_left": "38600.00", "assistance": "1400.00"}
    assert Figures.of(event) == figures()
    assert Figures.of({**event, "per_settlement_cap": "1000.00"}).per_settlement_cap == D("1000.00")


def entry(day: int, ded: str, assistance: str, released: bool = False, cap: str = "40000.00") -> YearEntry:
    return YearEntry(date(2026, 3, day), D(ded), D(assistance), D("500.00"), D(cap), released)


@pytest.mark.parametrize(("entries", "used", "committed", "cap_left"), [
    ([], "0.00", "0.00", "0.00"),
    ([entry(1, "500.00", "1400.00")], "500.00", "1400.00", "38600.00"),
    ([entry(1, "300.00", "0.00"), entry(2, "200.00", "700.00")], "500.00", "700.00", "39300.00"),
    ([entry(1, "500.00", "1400.00", released=True), entry(5, "0.00", "900.00")], "0.00", "900.00", "39100.00"),
    ([entry(1, "0.00", "39000.00"), entry(9, "0.00", "2000.00", cap="40000.00")], "0.00", "41000.00", "0.00"),
])
def test_year_so_far_is_what_is_kept_of_each_calculation(entries: list[YearEntry], used: str, committed: str,
                                                          cap_left: str) -> None:
    year = year_so_far(2026, entries)
    assert (year.deductible_used, year.committed, year.cap_left) == (D(used), D(committed), D(cap_left))
