"""Money and ratios on the wire: what is read, what is refused, and how they are written."""

from decimal import Decimal

import orjson
import pytest
from pydantic import BaseModel, ValidationError

from shared.contracts.types import Money, Ratio


class Amounts(BaseModel):
    amount: Money
    ratio: Ratio = Decimal("0.5")


@pytest.mark.parametrize(("value", "read", "written"), [
    ("123.45", Decimal("123.45"), "123.45"),
    ("0.00", Decimal("0.00"), "0.00"),
    ("-0.01", Decimal("-0.01"), "-0.01"),
    ("999999999999.99", Decimal("999999999999.99"), "999999999999.99"),
])
def test_money_reads_a_two_place_string_and_writes_it_back(value: str, read: Decimal, written: str) -> None:
    for parsed in (Amounts.model_validate({"amount": value}),
                   Amounts.model_validate_json(orjson.dumps({"amount": value}))):
        assert parsed.amount == read and parsed.amount.as_tuple().exponent == -2
        assert parsed.model_dump(mode="json")["amount"] == written
        assert orjson.loads(parsed.model_dump_json())["amount"] == written


@pytest.mark.parametrize(("value", "written"), [
    (Decimal("1875"), "1875.00"), (Decimal("0.005"), "0.01"), (Decimal("2.675"), "2.68"), (Decimal("-0.005"), "-0.01"),
    (Decimal("1E+3"), "1000.00"), (Decimal("12.3"), "12.30"),
])
def test_money_from_code_is_rounded_half_up_to_two_places(value: Decimal, written: str) -> None:
    parsed = Amounts(amount=value)
    assert parsed.amount == Decimal(written) and str(parsed.amount) == written
    assert parsed.model_dump(mode="json")["amount"] == written and parsed.model_dump()["amount"] == written


@pytest.mark.parametrize("value", [
    "12.3", "12.345", "12", "1e3", "1.00\n", " 1.00", "+1.00", "1,000.00", "１２.３４", "١٢.٣٤", "1234567890123.00",
    "NaN", "", 12.34, 12, True, None, [], {"amount": "1.00"},
])
def test_money_refuses_anything_else_with_its_own_code(value: object) -> None:
    for validate in (lambda: Amounts.model_validate({"amount": value}),
                     lambda: Amounts.model_validate_json(orjson.dumps({"amount": value}))):
        with pytest.raises(ValidationError) as refused:
            validate()
        assert [(e["loc"], e["type"]) for e in refused.value.errors()] == [(("amount",), "invalid_money")]
        assert "two places" in refused.value.errors()[0]["msg"]


def test_money_refuses_a_decimal_it_cannot_round() -> None:
    with pytest.raises(ValidationError):
        Amounts(amount=Decimal("Infinity"))


@pytest.mark.parametrize(("value", "written"), [("0.85", "0.85"), ("1", "1"), ("0.6525", "0.6525")])
def test_a_ratio_reads_a_decimal_string_and_writes_it_back(value: str, written: str) -> None:
    parsed = Amounts.model_validate_json(orjson.dumps({"amount": "1.00", "ratio": value}))
    assert parsed.ratio == Decimal(value) and parsed.model_dump(mode="json")["ratio"] == written
    assert Amounts(amount=Decimal("1.00"), ratio=Decimal(value)).model_dump(mode="json")["ratio"] == written


@pytest.mark.parametrize("value", ["0.65255", "10", ".5", "0.", "-0.5", "0.85\n", 0.85, 1])
def test_a_ratio_refuses_anything_else(value: object) -> None:
    with pytest.raises(ValidationError) as refused:
        Amounts.model_validate_json(orjson.dumps({"amount": "1.00", "ratio": value}))
    assert [(e["loc"], e["type"]) for e in refused.value.errors()] == [(("ratio",), "invalid_ratio")]
