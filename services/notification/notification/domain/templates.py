"""SMS texts from versioned template documents (data in `notification/templates/`, not code).

A document names its version; every message records the version it was written with, so a changed wording
is a new document and the texts already sent stay explainable.
"""

import json
import string
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from enum import StrEnum
from pathlib import Path
from typing import Any

from shared.money import to_money


class Moment(StrEnum):
    """The moments a person is told about."""

    CALCULATED = "assistance_calculated"  # calculated, waiting for review
    APPROVED = "case_approved"
    REJECTED = "case_rejected"
    PAID = "transfer_settled"
    PAYMENT_FAILED = "transfer_failed"
    RECOVERY = "recovery_opened"  # reversed after payment: the money is to be recovered


# What each moment's text may use; a template asking for anything else is refused when it is loaded.
PLACEHOLDERS: dict[Moment, frozenset[str]] = {
    Moment.CALCULATED: frozenset({"amount", "hospital", "discharge_date"}),
    Moment.APPROVED: frozenset({"amount", "hospital", "discharge_date"}),
    Moment.REJECTED: frozenset({"amount", "hospital", "discharge_date", "reason", "service_desk"}),
    Moment.PAID: frozenset({"amount", "paid_on", "account"}),
    Moment.PAYMENT_FAILED: frozenset({"amount", "account", "what_to_do", "service_desk"}),
    Moment.RECOVERY: frozenset({"amount", "hospital", "discharge_date"}),
}


class TemplateError(ValueError):
    """A template document that cannot be used."""


def yuan(amount: Decimal) -> str:
    """An amount as a person reads it: thousands separated, two places, `1,234.56 元`."""
    return f"{to_money(amount):,.2f} 元"


def chinese_date(day: date) -> str:
    return f"{day.year}年{day.month}月{day.day}日"


@dataclass(frozen=True)
class Facts:
    """What a message may say. `account` is already masked (`****1234`); the text never sees more."""

    amount: Decimal | None = None
    hospital: str | None = None
    discharge_date: date | None = None
    paid_on: date | None = None
    account: str | None = None
    reason: str | None = None


def _fields(text: str) -> set[str]:
    try:
        return {name for _, name, _, _ in string.Formatter().parse(text) if name is not None}
    except ValueError as exc:
        raise TemplateError(f"unreadable template: {exc}") from None


@dataclass(frozen=True)
class TemplateSet:
    """One version of the texts, with the plain words for reason codes and states."""

    version: int
    language: str
    signature: str
    texts: dict[Moment, str]
    service_desk: str
    reject_reasons: dict[str, str]
    payment_failures: dict[str, str]
    eligibility_reasons: dict[str, str] = field(default_factory=dict)
    review_states: dict[str, str] = field(default_factory=dict)
    payment_states: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_document(cls, doc: dict[str, Any]) -> "TemplateSet":
        """Validate a template document: every moment has a text using only its placeholders."""
        try:
            texts = {Moment(k): str(v) for k, v in doc["texts"].items()}
            result = cls(version=int(doc["version"]), language=str(doc["language"]),
                         signature=str(doc["signature"]), texts=texts, service_desk=str(doc["service_desk"]),
                         reject_reasons=dict(doc["reject_reasons"]), payment_failures=dict(doc["payment_failures"]),
                         eligibility_reasons=dict(doc.get("eligibility_reasons", {})),
                         review_states=dict(doc.get("review_states", {})),
                         payment_states=dict(doc.get("payment_states", {})))
        except (KeyError, TypeError, ValueError) as exc:
            raise TemplateError(f"not a template document: {exc}") from None
        missing = set(Moment) - set(texts)
        if missing:
            raise TemplateError(f"version {result.version} has no text for {sorted(missing)}")
        for moment, text in texts.items():
            unknown = _fields(text) - PLACEHOLDERS[moment]
            if unknown:
                raise TemplateError(f"{moment}: unknown placeholders {sorted(unknown)}")
        for table in (result.reject_reasons, result.payment_failures):
            if "default" not in table:
                raise TemplateError("reason tables need a 'default' entry")
            for text in table.values():
                if _fields(text) - {"service_desk"}:
                    raise TemplateError("reason texts may only use {service_desk}")
        return result

    def render(self, moment: Moment, facts: Facts) -> str:
        """The text of one message (signature first, as Chinese SMS senders are identified)."""
        values = {
            "amount": yuan(facts.amount) if facts.amount is not None else "",
            "hospital": facts.hospital or "医院",
            "discharge_date": chinese_date(facts.discharge_date) if facts.discharge_date else "近日",
            "paid_on": chinese_date(facts.paid_on) if facts.paid_on else "近日",
            "account": facts.account or "****",
            "reason": self.words(self.reject_reasons, facts.reason),
            "what_to_do": self.words(self.payment_failures, facts.reason),
            "service_desk": self.service_desk,
        }
        return self.signature + self.texts[moment].format_map(values)

    def words(self, table: dict[str, str], code: str | None) -> str:
        """A reason code in plain words (the table's default for a code it does not know)."""
        text = table.get(code or "", table.get("default", code or ""))
        return text.format_map({"service_desk": self.service_desk})


def load_templates(folder: Path) -> dict[int, TemplateSet]:
    """Every template document in a folder (`sms-<language>.v<version>.json`), by version."""
    sets: dict[int, TemplateSet] = {}
    for path in sorted(folder.glob("sms-*.v*.json")):
        template = TemplateSet.from_document(json.loads(path.read_text(encoding="utf-8")))
        if template.version in sets:
            raise TemplateError(f"two documents claim version {template.version}")
        sets[template.version] = template
    if not sets:
        raise TemplateError(f"no template documents in {folder}")
    return sets
