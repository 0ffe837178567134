"""Domain errors: what service layers and aggregates raise when a command cannot be carried out.

They say what went wrong in the domain's words (a stable `code`, a message, the field) and know nothing of
HTTP; the entrypoints' problem handlers (shared.problems) map each kind to its status. Outside your area a
thing is `NotFound`, never `Forbidden` (shared.security.area).
"""

from typing import Any


class DomainError(Exception):
    """A command refused by the domain; subclass by kind, not by cause."""

    def __init__(self, code: str, message: str, field: str | None = None,
                 errors: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.code, self.message, self.field, self.errors = code, message, field, errors


class NotFound(DomainError):
    """No such thing (or not one the caller may know of)."""


class Conflict(DomainError):
    """The thing's state does not allow the command now (already decided, already paid, ...)."""


class Forbidden(DomainError):
    """The caller may not do this to a thing they may see (four eyes, own work)."""


class Invalid(DomainError):
    """The command's content breaks a rule (an amount out of range, an unknown code)."""
