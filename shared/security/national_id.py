"""Resident identity card numbers, checked with python-stdnum (format, birth date, check digit)."""

from stdnum.cn import ric
from stdnum.exceptions import ValidationError

from shared.problems import ProblemError


def validate_national_id(value: str, field: str = "national_id") -> str:
    """The compact, upper-case ID; a 422 problem otherwise. The ID itself never appears in the message."""
    try:
        return str(ric.validate(value)).upper()
    except (ValidationError, ValueError, TypeError):
        raise ProblemError(422, "invalid_national_id", "not a valid resident identity card number",
                           field=field) from None
