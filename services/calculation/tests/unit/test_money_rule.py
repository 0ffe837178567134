"""The money rule, table-driven, with expectations computed by hand."""

from datetime import date
from decimal import Decimal as D

import pytest
from calculation.domain.money_rule import LedgerPosition, SettlementAmounts, WrongLedgerYear, calculate, release
from calculation.domain.policy import NotCovered, Policy

POLICY = Policy.model_validate({
    "policy_id": "test", "version": 1, "region_code": "310110", "effective_from": "2026-01-01",
    "categories": {"subsistence": {
        "deductible": "500.00", "cap": "1000.00", "per_settlement_cap": "600.00",
        "ratios": {"inpatient": {"default": "0.80", "3": "0.75"}, "outpatient_chronic": {"default": "0.70"},
                   "outpatient": {"default": "0.50"}}}},
})


def figures(scope: str, basic: str = "0.00", critical: str = "0.00", visit: str = "inpatient", level: int = 2,
            on: date = date(2026, 5, 1)) -> SettlementAmounts:
    return SettlementAmounts(D(scope), D(basic), D(critical), visit, level, on)


def ledger(used: str = "0.00", committed: str = "0.00", year: int = 2026) -> LedgerPosition:
    return LedgerPosition(year, D(used), D(committed))


@pytest.mark.parametrize(
    ("case", "settlement", "before", "base", "deductible_applied", "amount_before_caps", "assistance"),
    [
        ("insurance paid more than scope: base is 0", figures("1000.00", "800.00", "300.00"), ledger(),
         "0.00", "0.00", "0.00", "0.00"),
        ("deductible taken first", figures("2000.00", "1000.00"), ledger(), "1000.00", "500.00", "400.00", "400.00"),
        ("ratio of a level-3 hospital", figures("2000.00", "1000.00", level=3), ledger(),
         "1000.00", "500.00", "375.00", "375.00"),
        ("half-up: 50.005 -> 50.01", figures("100.01", visit="outpatient"), ledger("500.00"),
         "100.01", "0.00", "50.01", "50.01"),
        ("half-up: 70.007 -> 70.01", figures("100.01", visit="outpatient_chronic"), ledger("500.00"),
         "100.01", "0.00", "70.01", "70.01"),
        ("rounding down: 23.331 -> 23.33", figures("33.33", visit="outpatient_chronic"), ledger("500.00"),
         "33.33", "0.00", "23.33", "23.33"),
        ("per-settlement cap", figures("2500.00", "500.00"), ledger("500.00"), "2000.00", "0.00", "1600.00", "600.00"),
        ("annual cap nearly used", figures("300.00"), ledger("500.00", "900.00"), "300.00", "0.00", "240.00",
         "100.00"),
        ("annual cap used up", figures("300.00"), ledger("500.00", "1000.00"), "300.00", "0.00", "240.00", "0.00"),
        ("critical illness counts against the base", figures("3000.00", "1500.00", "1200.00"), ledger("450.00"),
         "300.00", "50.00", "200.00", "200.00"),
    ],
)
def test_one_settlement(case: str, settlement: SettlementAmounts, before: LedgerPosition, base: str,
                        deductible_applied: str, amount_before_caps: str, assistance: str) -> None:
    calc = calculate(settlement, "subsistence", POLICY, before)
    assert (calc.base, calc.deductible_applied, calc.amount_before_caps, calc.assistance) == (
        D(base), D(deductible_applied), D(amount_before_caps), D(assistance)), case
    assert calc.ledger_after == LedgerPosition(2026, before.deductible_used + D(deductible_applied),
                                               before.committed + D(assistance))


def run(settlements: list[SettlementAmounts], start: LedgerPosition) -> tuple[list[str], LedgerPosition]:
    position, paid = start, []
    for s in settlements:
        calc = calculate(s, "subsistence", POLICY, position)
        paid.append(str(calc.assistance))
        position = calc.ledger_after
    return paid, position


@pytest.mark.parametrize(
    ("case", "bases", "expected", "used", "committed"),
    [
        ("deductible spread over three settlements", ["200.00", "200.00", "300.00"], ["0.00", "0.00", "160.00"],
         "500.00", "160.00"),
        ("cap reached on the third settlement", ["1000.00", "1000.00", "1000.00"], ["400.00", "600.00", "0.00"],
         "500.00", "1000.00"),
    ],
)
def test_a_year_of_settlements(case: str, bases: list[str], expected: list[str], used: str, committed: str) -> None:
    paid, position = run([figures(b) for b in bases], ledger())
    assert (paid, position.deductible_used, position.committed) == (expected, D(used), D(committed)), case


def test_year_boundary_starts_a_fresh_ledger() -> None:
    december = calculate(figures("2000.00", on=date(2026, 12, 31)), "subsistence", POLICY, ledger("500.00", "1000.00"))
    assert december.assistance == D("0.00")
    january = calculate(figures("2000.00", on=date(2027, 1, 1)), "subsistence", POLICY, ledger(year=2027))
    assert (january.year, january.deductible_applied, january.assistance) == (2027, D("500.00"), D("600.00"))
    with pytest.raises(WrongLedgerYear):
        calculate(figures("2000.00", on=date(2027, 1, 1)), "subsistence", POLICY, ledger(year=2026))


def test_release_after_rejection_frees_the_cap_for_a_later_settlement() -> None:
    first = calculate(figures("1500.00"), "subsistence", POLICY, ledger("500.00", "400.00"))
    assert first.assistance == D("600.00") and first.ledger_after.committed == D("1000.00")
    blocked = calculate(figures("500.00"), "subsistence", POLICY, first.ledger_after)
    assert blocked.assistance == D("0.00")
    freed = release(first.ledger_after, first.deductible_applied, first.assistance)
    assert freed == ledger("500.00", "400.00")
    later = calculate(figures("500.00"), "subsistence", POLICY, freed)
    assert later.assistance == D("400.00")


def test_release_never_goes_below_zero() -> None:
    assert release(ledger("100.00", "50.00"), D("200.00"), D("80.00")) == ledger()


def test_unknown_category_is_not_covered() -> None:
    with pytest.raises(NotCovered):
        calculate(figures("100.00"), "extreme_poverty", POLICY, ledger())


@pytest.mark.parametrize("scope", ["0.00", "33.33", "100.01", "1500.00", "2500.00", "99999.99"])
@pytest.mark.parametrize("before", [ledger(), ledger("450.00"), ledger("500.00", "900.00")])
def test_figures_are_what_validation_makes_of_them(scope: str, before: LedgerPosition) -> None:
    """`figures_of` skips validation: its figures must equal, value and text, what the validated model makes."""
    import uuid

    from calculation.domain.calculation import figures_of

    from shared.contracts import events as ev

    s = ev.SettlementReceived(
        settlement_id=uuid.uuid4(), hospital_id="H001", hospital_settlement_id="C-1", hospital_level=3,
        visit_type="inpatient", admission_date=date(2026, 5, 1), discharge_date=date(2026, 5, 1),
        total_amount=D(scope), policy_scope_amount=D(scope), basic_insurance_paid=D("0.00"),
        critical_illness_paid=D("0.00"))
    result = calculate(SettlementAmounts(s.policy_scope_amount, s.basic_insurance_paid, s.critical_illness_paid,
                                         "inpatient", 3, s.discharge_date), "subsistence", POLICY, before)
    built = figures_of(s, result)
    validated = ev.AssistanceFigures.model_validate(dict(built))
    assert built == validated
    assert built.model_dump_json() == validated.model_dump_json()
    assert ev.AssistanceFigures.model_validate_json(built.model_dump_json()) == validated
