"""Money is Decimal yuan with two places, rounded half-up. Never float."""

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

CENT = Decimal("0.01")
ZERO = Decimal("0.00")


class MoneyError(ValueError):
    """A value that is not a valid amount of yuan."""


def to_money(value: Decimal | int | str) -> Decimal:
    """Round a Decimal (or int, or decimal string) half-up to 0.01 yuan.

    Floats are refused: they cannot represent most cent values exactly.
    """
    if isinstance(value, float):
        raise MoneyError("money must not be a float")
    try:
        return Decimal(value).quantize(CENT, rounding=ROUND_HALF_UP)
    except (InvalidOperation, ValueError) as exc:
        raise MoneyError(f"not an amount: {value!r}") from exc


def parse_amount(text: str) -> Decimal:
    """Parse an exact amount from input: at most two decimal places, not negative, finite."""
    try:
        value = Decimal(text)
    except (InvalidOperation, ValueError, TypeError) as exc:
        raise MoneyError(f"not an amount: {text!r}") from exc
    if not value.is_finite():
        raise MoneyError("amount must be finite")
    if value < 0:
        raise MoneyError("amount must not be negative")
    exponent = value.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -2:
        raise MoneyError("amount has more than two decimal places")
    return value.quantize(CENT)
