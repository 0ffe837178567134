"""Field types used on the wire."""

import re
from datetime import date
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BeforeValidator, PlainSerializer, WithJsonSchema
from pydantic_core import PydanticCustomError

from shared.canonical import NotCanonical, canonical_national_id, iso_date
from shared.money import to_money

# ASCII digits only ([0-9], never \d: Python's and pydantic's \d match full-width and Arabic-Indic digits too).
_MONEY_PATTERN = re.compile(r"^-?[0-9]{1,12}\.[0-9]{2}$")
_RATIO_PATTERN = re.compile(r"^[0-9](\.[0-9]{1,4})?$")


def _money_in(value: Any) -> Decimal:
    if isinstance(value, Decimal):
        return to_money(value)
    if not isinstance(value, str) or not _MONEY_PATTERN.match(value):
        raise ValueError("money travels as a decimal string with two places, e.g. '123.45'")
    return Decimal(value)


def _ratio_in(value: Any) -> Decimal:
    if isinstance(value, Decimal):
        return value
    if not isinstance(value, str) or not _RATIO_PATTERN.match(value):
        raise ValueError("a ratio travels as a decimal string, e.g. '0.85'")
    return Decimal(value)


Money = Annotated[
    Decimal,
    BeforeValidator(_money_in),
    PlainSerializer(lambda d: f"{to_money(d):.2f}", return_type=str),
    WithJsonSchema({"type": "string", "pattern": _MONEY_PATTERN.pattern}),
]
"""Yuan with two places, as a string on the wire so no consumer parses it as a float."""

Ratio = Annotated[
    Decimal,
    BeforeValidator(_ratio_in),
    PlainSerializer(lambda d: str(d), return_type=str),
    WithJsonSchema({"type": "string", "pattern": _RATIO_PATTERN.pattern}),
]

def _national_id_in(value: Any) -> str:
    try:
        return canonical_national_id(value)
    except NotCanonical as exc:
        raise PydanticCustomError("invalid_national_id", str(exc)) from None


def _date_in(value: Any) -> date:
    try:
        return iso_date(value)
    except NotCanonical as exc:
        raise PydanticCustomError("invalid_date", str(exc)) from None


NationalId = Annotated[
    str,
    BeforeValidator(_national_id_in),
    WithJsonSchema({"type": "string", "minLength": 18, "maxLength": 18, "description":
                    "Resident identity card number: 17 digits and a check digit (0-9 or X). Full-width digits "
                    "and a lower-case x are accepted and stored as ASCII; any other form is refused."}),
]
"""A national ID in its one canonical form (shared.canonical), whichever edge it came through."""

IsoDate = Annotated[
    date,
    BeforeValidator(_date_in),
    WithJsonSchema({"type": "string", "format": "date", "pattern": r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"}),
]
"""A calendar date as YYYY-MM-DD; JSON numbers (epoch seconds) and datetimes are refused."""

PERSON_REF_PATTERN = r"^[0-9a-f]{64}$"
DISTRICT_CODE_PATTERN = r"^[0-9]{6}$"
SUBDISTRICT_CODE_PATTERN = r"^[0-9]{9,12}$"
HOSPITAL_ID_PATTERN = r"^[A-Za-z0-9._-]{1,32}$"
TEXT_PATTERN = r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f]*$"
"""Text people write (comments, reasons): no control characters but tab and line breaks; PostgreSQL cannot
store U+0000 at all."""


class VisitType(StrEnum):
    INPATIENT = "inpatient"
    OUTPATIENT_CHRONIC = "outpatient_chronic"
    OUTPATIENT = "outpatient"


class Category(StrEnum):
    EXTREME_POVERTY = "extreme_poverty"
    SUBSISTENCE = "subsistence"
    LOW_INCOME = "low_income"


class ConsentLookback(StrEnum):
    """Whether a consent signed in a year also covers that year's earlier settlements: a flag of the region's
    policy, versioned with it (DESIGN.md section 4)."""

    CALENDAR_YEAR = "calendar_year"
    NONE = "none"
