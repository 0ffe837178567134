"""One message per event and person, never two: the message's id is derived from both.

The same id is the SMS gateway's idempotency key, so neither a redelivered event (the database refuses a
second row) nor a re-sent request after a timeout (the gateway returns the first) can make a second SMS.
"""

import uuid
from collections.abc import Iterable
from dataclasses import dataclass

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

    @property
    def message_id(self) -> uuid.UUID:
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
