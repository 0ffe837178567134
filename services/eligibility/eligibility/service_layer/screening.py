"""Screening settlements: on arrival (from Kafka) and again when a person's registry entry or consent changes."""

from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from opentelemetry.trace import Span
from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from eligibility.adapters.metrics import DECISIONS
from eligibility.adapters.tables import ConsentRecord, Person, RegistryPeriod, Screening
from eligibility.domain.rules import Consent, ConsentLookback, EligibilityDecision, decide
from eligibility.domain.rules import RegistryPeriod as Period
from shared.contracts.envelope import Envelope
from shared.contracts.events import EligibilityDecided, SettlementReceived, SettlementReversed
from shared.contracts.topics import ELIGIBILITY_DECIDED
from shared.messaging.consumer import Event
from shared.messaging.outbox import Outgoing, add_events
from shared.settings import ServiceSettings
from shared.telemetry import tracer


class PersonFacts:
    """What screening needs to know about a set of persons, loaded with one query per table."""

    def __init__(self) -> None:
        self.persons: dict[str, Any] = {}  # person_ref -> row with district_code, subdistrict_code
        self.periods: dict[str, list[Period]] = defaultdict(list)
        self.consents: dict[str, list[Consent]] = defaultdict(list)

    @classmethod
    async def load(cls, session: AsyncSession, refs: Iterable[str]) -> "PersonFacts":
        facts = cls()
        refs = list(set(refs))
        # Plain column rows, not ORM entities: this runs for every batch and entity loading dominated it.
        for p in (await session.execute(select(Person.person_ref, Person.district_code, Person.subdistrict_code)
                                        .where(Person.person_ref.in_(refs)))).all():  # type: ignore[attr-defined]
            facts.persons[p.person_ref] = p
        for r in (await session.execute(
                select(RegistryPeriod.person_ref, RegistryPeriod.category, RegistryPeriod.valid_from,
                       RegistryPeriod.valid_to).where(RegistryPeriod.person_ref.in_(refs)))).all():  # type: ignore[attr-defined]
            facts.periods[r.person_ref].append(Period(r.category, r.valid_from, r.valid_to))
        for c in (await session.execute(
                select(ConsentRecord.person_ref, ConsentRecord.signed_on, ConsentRecord.revoked_on)
                .where(ConsentRecord.person_ref.in_(refs)))).all():  # type: ignore[attr-defined]
            facts.consents[c.person_ref].append(Consent(c.signed_on, c.revoked_on))
        return facts

    def decide(self, person_ref: str, settlement: SettlementReceived, lookback: ConsentLookback) -> EligibilityDecision:
        return decide(self.periods.get(person_ref, []), self.consents.get(person_ref, []),
                      settlement.discharge_date, lookback)

    def decided_event(self, person_ref: str, settlement: SettlementReceived, decision: EligibilityDecision,
                      rescreened: bool) -> EligibilityDecided:
        person = self.persons.get(person_ref) if decision.eligible else None
        return EligibilityDecided(
            settlement=settlement,
            eligible=decision.eligible,
            reason=decision.reason.value,
            category=decision.category.value if decision.category else None,
            district_code=person.district_code if person else None,
            subdistrict_code=person.subdistrict_code if person else None,
            rescreened=rescreened,
        )


def _screening_row(person_ref: str, settlement: SettlementReceived, decision: EligibilityDecision) -> dict:  # type: ignore[type-arg]
    return {
        "settlement_id": settlement.settlement_id,
        "person_ref": person_ref,
        "discharge_date": settlement.discharge_date,
        "settlement": settlement.model_dump(mode="json"),
        "eligible": decision.eligible,
        "reason": decision.reason.value,
        "category": decision.category.value if decision.category else None,
        "parked": decision.parked,
        "decided_at": datetime.now(UTC),
    }


def _annotate(span: Span, settlement_id: object, decision: EligibilityDecision, rescreened: bool = False) -> None:
    DECISIONS.labels(decision.reason.value, str(rescreened).lower()).inc()
    span.set_attribute("settlement.id", str(settlement_id))
    span.set_attribute("eligibility.reason", decision.reason.value)


async def screen_events(session: AsyncSession, settings: ServiceSettings, lookback: ConsentLookback,
                        events: Sequence[Event]) -> None:
    """Consumer handler for settlement.received: decide each new settlement, forward reversals."""
    arrivals = [e for e in events if isinstance(e.data, SettlementReceived)]
    reversals = [e for e in events if isinstance(e.data, SettlementReversed)]
    facts = await PersonFacts.load(session, [e.envelope.person_ref for e in arrivals])
    rows, outgoing = [], []
    for event in arrivals:
        settlement: SettlementReceived = event.data  # type: ignore[assignment]
        ref = event.envelope.person_ref
        decision = facts.decide(ref, settlement, lookback)
        _annotate(event.span, settlement.settlement_id, decision)
        rows.append(_screening_row(ref, settlement, decision))
        data = facts.decided_event(ref, settlement, decision, rescreened=False)
        outgoing.append(Outgoing(ELIGIBILITY_DECIDED, Envelope.wrap(data, person_ref=ref, producer="eligibility"),
                                 event.span))
    if rows:
        # A settlement id seen before (a hospital retry that slipped past intake) keeps its first decision.
        inserted = {str(i) for i in (await session.execute(
            insert(Screening).on_conflict_do_nothing().returning(Screening.settlement_id), rows)).scalars()}
        outgoing = [o for o in outgoing if o.envelope.data["settlement"]["settlement_id"] in inserted]
    for event in reversals:
        reversal: SettlementReversed = event.data  # type: ignore[assignment]
        await session.execute(update(Screening).where(Screening.settlement_id == reversal.settlement_id)
                              .values(reversed=True, parked=False))
        event.span.set_attribute("settlement.id", str(reversal.settlement_id))
        outgoing.append(Outgoing(ELIGIBILITY_DECIDED, Envelope.wrap(reversal, person_ref=event.envelope.person_ref,
                                                                    producer="eligibility"), event.span))
    await add_events(session, settings, outgoing)


async def rescreen_parked(session: AsyncSession, settings: ServiceSettings, lookback: ConsentLookback,
                          person_refs: Iterable[str]) -> int:
    """Screen the persons' parked settlements again; emit a decision for each whose outcome changed."""
    refs = list(set(person_refs))
    if not refs:
        return 0
    parked = list((await session.execute(
        select(Screening).where(Screening.person_ref.in_(refs), Screening.parked, ~Screening.reversed)  # type: ignore[attr-defined]
        .order_by(Screening.discharge_date).with_for_update()
    )).scalars())
    if not parked:
        return 0
    facts = await PersonFacts.load(session, refs)
    outgoing, changed = [], []
    for screening in parked:
        settlement = SettlementReceived.model_validate(screening.settlement)
        decision = facts.decide(screening.person_ref, settlement, lookback)
        if decision.eligible == screening.eligible and decision.reason.value == screening.reason:
            continue
        changed.append(_screening_row(screening.person_ref, settlement, decision))
        with tracer.start_as_current_span("settlement rescreened") as span:
            _annotate(span, settlement.settlement_id, decision, rescreened=True)
            data = facts.decided_event(screening.person_ref, settlement, decision, rescreened=True)
            outgoing.append(Outgoing(ELIGIBILITY_DECIDED, Envelope.wrap(
                data, person_ref=screening.person_ref, producer="eligibility"), span))
    if changed:
        stmt = insert(Screening).values(changed)
        await session.execute(stmt.on_conflict_do_update(
            index_elements=[Screening.settlement_id],
            set_={c: stmt.excluded[c] for c in ("eligible", "reason", "category", "parked", "decided_at")},
        ))
        await add_events(session, settings, outgoing)
    return len(changed)
