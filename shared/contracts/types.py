"""Field types used on the wire."""

import re
from collections.abc import Callable
from datetime import date
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BeforeValidator, GetCoreSchemaHandler, WithJsonSchema
from pydantic_core import PydanticCustomError
from pydantic_core import core_schema as cs

from shared.canonical import NotCanonical, canonical_national_id, iso_date
from shared.money import to_money

# ASCII digits only ([0-9], never \d: Python's and pydantic's \d match full-width and Arabic-Indic digits too).
_MONEY_PATTERN = re.compile(r"^-?[0-9]{1,12}\.[0-9]{2}$")
_RATIO_PATTERN = re.compile(r"^[0-9](\.[0-9]{1,4})?$")


class _WireDecimal:
    """A decimal that travels as a string matching `pattern`, checked and parsed inside pydantic-core, with no
    Python call a field (an AssistanceCalculated carries 19 of them; docs/decisions/0040). JSON input must be
    such a string: a JSON number is refused. Python input may also be a Decimal, which `from_decimal` rounds
    (None: taken as it is). It is written as `str()`: a value read from the wire has the pattern's places, and
    `from_decimal` gives a Decimal its places, so `str()` is the pattern's form (never an exponent)."""

    def __init__(self, pattern: re.Pattern[str], code: str, message: str,
                 from_decimal: Callable[[Decimal], Decimal] | None = None) -> None:
        self._pattern, self._code, self._message, self._from_decimal = pattern, code, message, from_decimal

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> cs.CoreSchema:
        wire = cs.chain_schema([cs.str_schema(pattern=self._pattern.pattern, strict=True), cs.decimal_schema()])
        decimal: cs.CoreSchema = cs.is_instance_schema(Decimal)
        if self._from_decimal is not None:
            decimal = cs.no_info_after_validator_function(self._from_decimal, decimal)
        return cs.json_or_python_schema(
            json_schema=self._refused(wire), python_schema=self._refused(cs.union_schema([decimal, wire])),
            serialization=cs.plain_serializer_function_ser_schema(str, return_schema=cs.str_schema()))

    def _refused(self, schema: cs.CoreSchema) -> cs.CoreSchema:
        """One error for the field with our code and message, whichever step refused it."""
        return cs.custom_error_schema(schema, custom_error_type=self._code, custom_error_message=self._message)


Money = Annotated[
    Decimal,
    _WireDecimal(_MONEY_PATTERN, "invalid_money", "money travels as a decimal string with two places, e.g. '123.45'",
                 to_money),
    WithJsonSchema({"type": "string", "pattern": _MONEY_PATTERN.pattern}),
]
"""Yuan with two places, as a string on the wire so no consumer parses it as a float."""

Ratio = Annotated[
    Decimal,
    _WireDecimal(_RATIO_PATTERN, "invalid_ratio", "a ratio travels as a decimal string, e.g. '0.85'"),
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
