from decimal import Decimal

import pytest

from shared.money import MoneyError, parse_amount, to_money


@pytest.mark.parametrize(("value", "expected"), [
    ("0.005", "0.01"), ("0.004", "0.00"), ("2.675", "2.68"), ("-2.675", "-2.68"), (7, "7.00"),
    (Decimal("1.125"), "1.13"),
])
def test_to_money_rounds_half_up(value, expected: str) -> None:
    assert to_money(value) == Decimal(expected)


def test_floats_are_refused() -> None:
    with pytest.raises(MoneyError):
        to_money(0.1)  # type: ignore[arg-type]


@pytest.mark.parametrize("text", ["-1.00", "1.001", "NaN", "Infinity", "abc", ""])
def test_parse_amount_refuses(text: str) -> None:
    with pytest.raises(MoneyError):
        parse_amount(text)
