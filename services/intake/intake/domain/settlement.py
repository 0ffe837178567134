"""A settlement as intake keeps it: the aggregate whose rules decide its status and raise its events.

A new settlement is received once (`receive`); afterwards it only learns what happened downstream (`learn`,
through `journey.wins`; a batch's facts at once as `News`, which the status view's UPDATE applies by the same
rule) or is reversed by its hospital (`reverse`), which is final.
"""

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from intake.domain.journey import Journey, wins
from intake.domain.submission import SettlementIn
from shared.contracts.events import EventData, SettlementReceived, SettlementReversed
from shared.errors import Conflict


@dataclass(frozen=True)
class Sealed:
    """The patient's national ID and name, already encrypted: the aggregate never holds them in plain."""

    national_id: str
    name: str


@dataclass(frozen=True)
class Step:
    """One status a settlement went through, for the hospital's timeline."""

    status: Journey
    reason: str | None = None


@dataclass(frozen=True)
class Known:
    """What accepting needs of a settlement already stored: its id, body fingerprint and status."""

    id: UUID
    fingerprint: str
    status: str


@dataclass(frozen=True)
class Announced:
    """An event whose payload is already in its JSON form: `SettlementReceived`, made from the submission the
    request validated, so each settlement is one pydantic model, not two (tests hold it to the contract)."""

    event_type: type[EventData]
    data: dict[str, Any]


SCREENED = (Journey.ELIGIBLE, Journey.PARKED)  # the screening's outcomes: their reason is the eligibility reason


@dataclass
class News:
    """What one batch of downstream facts says about one settlement, folded in event order (`hear`): the fact
    that would stand after all of them (the latest of the highest stage), the latest screening's reason, the
    latest assistance, and every fact as a step. Applying it to the settlement (`Settlement.learn_news`, or the
    repository's `learn`, the same rule in one UPDATE) is the same as learning each fact in turn."""

    settlement_id: UUID
    status: Journey
    reason: str | None
    screened: bool = False
    eligibility_reason: str | None = None
    assistance: Decimal | None = None
    steps: list[Step] = field(default_factory=list)

    @classmethod
    def fold(cls, facts: Iterable[tuple[UUID, Journey, str | None, Decimal | None]]) -> list["News"]:
        """Each settlement's news from facts (settlement id, status, reason, assistance) in event order."""
        news: dict[UUID, News] = {}
        for settlement_id, status, reason, assistance in facts:
            known = news.get(settlement_id)
            if known is None:
                known = news[settlement_id] = cls(settlement_id, status, reason)
            known.hear(status, reason, assistance)
        return list(news.values())

    def hear(self, status: Journey, reason: str | None, assistance: Decimal | None) -> None:
        if wins(self.status, status):  # never a reversal here: downstream facts do not reverse
            self.status, self.reason = status, reason
        if assistance is not None:
            self.assistance = assistance
        if status in SCREENED:
            # Screening decisions arrive in order on one partition: the latest is the one that stands.
            self.screened, self.eligibility_reason = True, reason
        self.steps.append(Step(status, reason))


@dataclass
class Settlement:
    """One hospital settlement and where it is; `steps` and `events` are what changed since it was loaded."""

    id: UUID
    hospital_id: str
    hospital_settlement_id: str
    person_ref: str
    status: Journey
    status_reason: str | None = None
    eligibility_reason: str | None = None
    assistance: Decimal | None = None
    content: SettlementIn | None = None  # only on a new settlement: what the hospital sent, sealed, fingerprinted
    sealed: Sealed | None = None
    fingerprint: str | None = None
    steps: list[Step] = field(default_factory=list)
    events: list[EventData | Announced] = field(default_factory=list)

    @classmethod
    def receive(cls, settlement_id: UUID, hospital_id: str, item: SettlementIn, canonical: dict[str, Any],
                fingerprint: str, person_ref: str, sealed: Sealed) -> "Settlement":
        """A settlement seen for the first time: `received`, announced without any personal data.

        `canonical` is `item.canonical()`, `fingerprint` its hash (`submission.fingerprint`)."""
        settlement = cls(settlement_id, hospital_id, item.hospital_settlement_id, person_ref, Journey.RECEIVED,
                         content=item, sealed=sealed, fingerprint=fingerprint, steps=[Step(Journey.RECEIVED)])
        # SettlementReceived's fields in its order; all but the first two from the submission's canonical body.
        settlement.events.append(Announced(SettlementReceived, {
            "settlement_id": str(settlement_id), "hospital_id": hospital_id,
            "hospital_settlement_id": canonical["hospital_settlement_id"],
            "hospital_level": canonical["hospital_level"], "visit_type": canonical["visit_type"],
            "admission_date": canonical["admission_date"], "discharge_date": canonical["discharge_date"],
            "total_amount": canonical["total_amount"], "policy_scope_amount": canonical["policy_scope_amount"],
            "basic_insurance_paid": canonical["basic_insurance_paid"],
            "critical_illness_paid": canonical["critical_illness_paid"]}))
        return settlement

    def learn(self, status: Journey, reason: str | None = None, assistance: Decimal | None = None) -> None:
        """A downstream fact: the status moves only forward (`journey.wins`); the eligibility reason is kept
        apart from the status, so later steps (calculated, approved, paid) do not erase it."""
        self.learn_news(News.fold([(self.id, status, reason, assistance)])[0])

    def learn_news(self, news: News) -> None:
        """A batch's facts about this settlement at once: the same as learning each of them in turn."""
        if wins(self.status, news.status):
            self.status, self.status_reason = news.status, news.reason
        if news.assistance is not None:
            self.assistance = news.assistance
        if news.screened:
            self.eligibility_reason = news.eligibility_reason
        self.steps += news.steps

    def reverse(self, reason: str | None, at: datetime) -> None:
        """Void the settlement at its hospital's request; a second reversal changes nothing."""
        if self.status is Journey.REVERSED:
            return
        self.status, self.status_reason = Journey.REVERSED, reason or "reversed_by_hospital"
        self.steps.append(Step(Journey.REVERSED, reason))
        self.events.append(SettlementReversed(settlement_id=self.id, hospital_id=self.hospital_id,
                                              hospital_settlement_id=self.hospital_settlement_id, reversed_at=at,
                                              reason=reason))


def refuse_conflicts(items: list[SettlementIn], fingerprints: list[str], known: dict[str, Known]) -> None:
    """Raise `Conflict` when a settlement id comes with two bodies: twice in the request, or unlike the body
    already accepted (`fingerprints[i]` is `items[i]`'s). A re-sent identical body is a retry, not a conflict."""
    first: dict[str, tuple[int, str]] = {}
    conflicts: list[dict[str, object]] = []
    for index, (item, fingerprint) in enumerate(zip(items, fingerprints, strict=True)):
        previous = first.setdefault(item.hospital_settlement_id, (index, fingerprint))
        if previous[1] != fingerprint:
            conflicts.append({"field": f"items.{index}.hospital_settlement_id", "code": "conflicting_duplicate",
                              "message": f"same id as item {previous[0]} with a different body"})
    for index, (item, fingerprint) in enumerate(zip(items, fingerprints, strict=True)):
        stored = known.get(item.hospital_settlement_id)
        if stored is not None and stored.fingerprint != fingerprint:
            conflicts.append({"field": f"items.{index}.hospital_settlement_id", "code": "conflicting_duplicate",
                              "message": "this settlement id was already accepted with a different body"})
    if conflicts:
        raise Conflict("conflicting_duplicate",
                       "a settlement id was already used with a different body; nothing was stored",
                       field=str(conflicts[0]["field"]), errors=conflicts)
