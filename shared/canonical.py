"""One canonical form at every edge: what a person types becomes one value, or is refused.

A national ID in full-width digits (`３１０１…`) is the same person as in ASCII digits; if one edge
pseudonymised it as typed and another after mapping it, one person would get two `person_ref`s. So every
edge (intake, the registry import, consents, every lookup) goes through `canonical_national_id` before any
checksum, pseudonym or storage. Amounts, dates and area codes are not normalised but refused unless they are
plain ASCII in the one documented form (shared.contracts.types), so there is nothing to normalise later.
"""

import re
import unicodedata
from datetime import date
from functools import lru_cache

from stdnum.cn import ric

_NATIONAL_ID = re.compile(r"[0-9]{17}[0-9X]")
_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


class NotCanonical(ValueError):
    """The value has no canonical form (its message never contains the value: it may be a national ID)."""


def normalise_national_id(value: str) -> str:
    """NFKC (full-width digits and letters become ASCII), trimmed, upper-case X; not yet validated."""
    return unicodedata.normalize("NFKC", value).strip().upper()


def canonical_national_id(value: object) -> str:
    """The 18-character ASCII form of a valid resident identity card number; NotCanonical otherwise.

    Valid means: 17 digits and a digit or X, the check digit, a real birth date, and a birth-place code
    python-stdnum knows for that year. Other digits (Arabic-Indic, ...) are refused rather than mapped.
    """
    if not isinstance(value, str):
        raise NotCanonical("a national ID is a string")
    text = normalise_national_id(value)
    if not _NATIONAL_ID.fullmatch(text):
        raise NotCanonical("a national ID is 17 digits and a check digit (0-9 or X)")
    try:
        if text[-1] != ric.calc_check_digit(text) or not _place_known(text[:6], text[6:10]):
            raise ValueError
        date(int(text[6:10]), int(text[10:12]), int(text[12:14]))  # a real birth date (ric's own check is slower)
    except Exception:  # noqa: BLE001 - stdnum raises KeyError (not its ValidationError) for some unknown places
        raise NotCanonical("not a valid resident identity card number (check digit, birth date or place)") from None
    return text


@lru_cache(maxsize=1 << 16)
def _place_known(place: str, year: str) -> bool:
    """Whether python-stdnum knows the birth-place code for that birth year (ric.validate's last check, which
    reads its county table and costs about 65 us a call; a province's IDs share a few thousand places and
    years, so the answers are kept)."""
    try:
        ric.get_birth_place(f"{place}{year}0101000" + "0")
    except Exception:  # noqa: BLE001 - as above
        return False
    return True


def iso_date(value: object) -> date:
    """A calendar date written YYYY-MM-DD (or already a date); epoch numbers and datetimes are refused."""
    if type(value) is date:  # a datetime is a date too, and is refused
        return value
    if not isinstance(value, str) or not _ISO_DATE.fullmatch(value):
        raise NotCanonical("a date is written YYYY-MM-DD")
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise NotCanonical("not a calendar date") from None
