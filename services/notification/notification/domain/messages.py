"""One message per event and person, never two: the message's id is derived from both.

The same id is the SMS gateway's idempotency key, so neither a redelivered event (the database refuses a
second row) nor a re-sent request after a timeout (the gateway returns the first) can make a second SMS.
"""

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cached_property
from typing import Protocol

from notification.domain.templates import Facts, Moment

_NAMESPACE = uuid.UUID("5c1d0f64-6a53-4c4e-9d53-7a0e6a1f9d21")


def message_id(event_id: uuid.UUID, person_ref: str) -> uuid.UUID:
    """The one message an event can cause for a person (a name-based UUID: the same inputs, the same id)."""
    return uuid.uuid5(_NAMESPACE, f"{event_id}:{person_ref}")


@dataclass(frozen=True)
class Notice:
    """A message to write: which event caused it, for whom, at which moment, saying what."""

    event_id: uuid.UUID
    person_ref: str
    moment: Moment
    facts: Facts
    settlement_id: uuid.UUID | None = None

    @cached_property
    def message_id(self) -> uuid.UUID:
        """Derived once per notice (a batch asks for it several times; uuid5 hashes each time)."""
        return message_id(self.event_id, self.person_ref)


def one_per_event(notices: Iterable[Notice]) -> list[Notice]:
    """The first notice of each (event, person), in order: a batch that holds an event twice writes it once."""
    seen: set[uuid.UUID] = set()
    kept = []
    for notice in notices:
        if notice.message_id not in seen:
            seen.add(notice.message_id)
            kept.append(notice)
    return kept


class Contact(Protocol):
    """What a message's first state depends on: whether the person can be and wants to be texted."""

    @property
    def phone_ciphertext(self) -> str | None: ...

    @property
    def sms_opt_out(self) -> bool: ...


def initial_status(contact: Contact | None) -> str:
    """`suppressed` for a person who opted out (an opt-out is honoured from the moment it is known: recorded,
    never sent), `held` while no phone number is known (released when one comes), otherwise `pending`."""
    if contact is not None and contact.sms_opt_out:
        return "suppressed"
    return "pending" if contact is not None and contact.phone_ciphertext else "held"


@dataclass(frozen=True)
class NewMessage:
    """A message as it is first written: rendered, and `pending`, `held` or `suppressed` (`initial_status`)."""

    id: uuid.UUID
    event_id: uuid.UUID
    person_ref: str
    settlement_id: uuid.UUID | None
    moment: Moment
    template_version: int
    body: str
    status: str
    occurred_at: datetime
    """When the event happened: a person's messages go (and are listed) in this order, whatever the topics'."""
    not_before: datetime
    traceparent: str | None = None


@dataclass(frozen=True)
class Claimed:
    """A message the sender has marked `sending` and now hands to the gateway."""

    id: uuid.UUID
    person_ref: str
    moment: str
    body: str
    traceparent: str | None
    phone_ciphertext: str


REPORTABLE = ("sending", "sent")
"""The states a gateway's delivery report can still move a message from (to delivered or undeliverable)."""


@dataclass(frozen=True)
class DeliveryReport:
    """The gateway's last word on a message it accepted: `delivered` or `undeliverable` (with its reason)."""

    message_id: uuid.UUID
    status: str
    reason: str | None = None


def one_per_message(reports: Iterable[DeliveryReport]) -> list[DeliveryReport]:
    """The first report of each message, in id order (a batch's rows are locked in the order the sender's
    claims and outcomes lock theirs): a message reported twice in a batch is moved once, by the first word,
    as it would have been by two reports one after the other (the first makes it final)."""
    first: dict[uuid.UUID, DeliveryReport] = {}
    for report in reports:
        first.setdefault(report.message_id, report)
    return [first[key] for key in sorted(first)]


@dataclass(frozen=True)
class Outcome:
    """What became of a claimed message at the gateway, and so its next state."""

    message: Claimed
    status: str  # sent | delivered | failed | pending (to go again later, same key)
    not_before: datetime
    gateway_id: str | None = None
    reason: str | None = None
    sent_at: datetime | None = None

    @classmethod
    def accepted(cls, message: Claimed, gateway_id: str, gateway_status: str, now: datetime) -> "Outcome":
        status = "delivered" if gateway_status == "delivered" else "sent"
        return cls(message, status, now, gateway_id=gateway_id, sent_at=now)

    @classmethod
    def rejected(cls, message: Claimed, reason: str, now: datetime) -> "Outcome":
        """The gateway refused the message itself: final."""
        return cls(message, "failed", now, reason=reason)

    @classmethod
    def unreachable(cls, message: Claimed, now: datetime, retry_in_s: float) -> "Outcome":
        """The gateway could not be reached: the message goes again after `retry_in_s`, under the same key."""
        return cls(message, "pending", now + timedelta(seconds=retry_in_s))
