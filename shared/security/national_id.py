"""Resident identity card numbers at an HTTP edge: the canonical form (shared.canonical) or a 422 problem."""

from shared.canonical import NotCanonical, canonical_national_id
from shared.problems import ProblemError


def validate_national_id(value: object, field: str = "national_id") -> str:
    """The canonical ASCII ID; a 422 problem otherwise. The ID itself never appears in the message."""
    try:
        return canonical_national_id(value)
    except NotCanonical as exc:
        raise ProblemError(422, "invalid_national_id", str(exc), field=field) from None
