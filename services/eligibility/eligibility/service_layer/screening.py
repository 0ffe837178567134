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
from eligibility.adapters.tables import ConsentRecord, Person, PolicyTermsRecord, RegistryPeriod, Screening
from eligibility.domain.rules import DEFAULT_LOOKBACK, Consent, EligibilityDecision, PolicyTerms, decide, terms_for
from eligibility.domain.rules import RegistryPeriod as Period
from shared.contracts.envelope import Envelope
from shared.contracts.events import EligibilityDecided, PolicyPublished, SettlementReceived, SettlementReversed
from shared.contracts.topics import ELIGIBILITY_DECIDED
from shared.contracts.types import ConsentLookback
from shared.messaging.consumer import Event
from shared.messaging.outbox import Outgoing, add_events
from shared.settings import ServiceSettings
from shared.telemetry import tracer

LOOKBACK_REASONS = ("no_consent", "consent_revoked")  # the parked reasons a consent lookback can change


class PersonFacts:
    """What screening needs to know about a set of persons, loaded with one query per table."""

    def __init__(self) -> None:
        self.persons: dict[str, Any] = {}  # person_ref -> row with district_code, subdistrict_code
        self.periods: dict[str, list[Period]] = defaultdict(list)
        self.consents: dict[str, list[Consent]] = defaultdict(list)
        self.terms: list[PolicyTerms] = []  # published policy versions of the persons' districts

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
        facts.terms = await load_terms(session, {p.district_code for p in facts.persons.values()})
        return facts

    def decide(self, person_ref: str, settlement: SettlementReceived) -> tuple[EligibilityDecision, PolicyTerms | None]:
        """The decision, with the lookback of the policy covering the person's district on the discharge date
        (the strict default while none is known) and that policy version."""
        person = self.persons.get(person_ref)
        terms = terms_for(self.terms, person.district_code if person else None, settlement.discharge_date)
        lookback = terms.consent_lookback if terms else DEFAULT_LOOKBACK
        decision = decide(self.periods.get(person_ref, []), self.consents.get(person_ref, []),
                          settlement.discharge_date, lookback)
        return decision, terms if decision.lookback is not None else None

    def decided_event(self, person_ref: str, settlement: SettlementReceived, decision: EligibilityDecision,
                      terms: PolicyTerms | None, rescreened: bool) -> EligibilityDecided:
        person = self.persons.get(person_ref) if decision.eligible else None
        return EligibilityDecided(
            settlement=settlement,
            eligible=decision.eligible,
            reason=decision.reason.value,
            category=decision.category.value if decision.category else None,
            district_code=person.district_code if person else None,
            subdistrict_code=person.subdistrict_code if person else None,
            rescreened=rescreened,
            consent_lookback=decision.lookback,
            lookback_policy_id=terms.policy_id if terms else None,
            lookback_policy_version=terms.version if terms else None,
        )


async def load_terms(session: AsyncSession, districts: Iterable[str]) -> list[PolicyTerms]:
    """Every published policy version of these districts (a handful each: read per batch, never cached, so
    replicas agree the moment a version is stored)."""
    districts = list(set(districts))
    if not districts:
        return []
    rows = (await session.execute(select(PolicyTermsRecord).where(
        PolicyTermsRecord.region_code.in_(districts)))).scalars()  # type: ignore[attr-defined]
    return [PolicyTerms(r.policy_id, r.version, r.region_code, r.effective_from, r.effective_to,
                        ConsentLookback(r.consent_lookback)) for r in rows]


def _screening_row(person_ref: str, settlement: SettlementReceived, decision: EligibilityDecision,
                   terms: PolicyTerms | None) -> dict:  # type: ignore[type-arg]
    return {
        "settlement_id": settlement.settlement_id,
        "person_ref": person_ref,
        "discharge_date": settlement.discharge_date,
        "settlement": settlement.model_dump(mode="json"),
        "eligible": decision.eligible,
        "reason": decision.reason.value,
        "category": decision.category.value if decision.category else None,
        "parked": decision.parked,
        "consent_lookback": decision.lookback.value if decision.lookback else None,
        "lookback_policy_id": terms.policy_id if terms else None,
        "lookback_policy_version": terms.version if terms else None,
        "decided_at": datetime.now(UTC),
    }


def _annotate(span: Span, settlement_id: object, decision: EligibilityDecision, rescreened: bool = False) -> None:
    DECISIONS.labels(decision.reason.value, str(rescreened).lower()).inc()
    span.set_attribute("settlement.id", str(settlement_id))
    span.set_attribute("eligibility.reason", decision.reason.value)


async def screen_events(session: AsyncSession, settings: ServiceSettings, events: Sequence[Event]) -> None:
    """Consumer handler for settlement.received: decide each new settlement, forward reversals."""
    arrivals = [e for e in events if isinstance(e.data, SettlementReceived)]
    reversals = [e for e in events if isinstance(e.data, SettlementReversed)]
    facts = await PersonFacts.load(session, [e.envelope.person_ref for e in arrivals])
    rows, outgoing = [], []
    for event in arrivals:
        settlement: SettlementReceived = event.data  # type: ignore[assignment]
        ref = event.envelope.person_ref
        decision, terms = facts.decide(ref, settlement)
        _annotate(event.span, settlement.settlement_id, decision)
        rows.append(_screening_row(ref, settlement, decision, terms))
        data = facts.decided_event(ref, settlement, decision, terms, rescreened=False)
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


async def rescreen_parked(session: AsyncSession, settings: ServiceSettings, person_refs: Iterable[str]) -> int:
    """Screen the persons' parked settlements again; emit a decision for each whose outcome changed."""
    refs = list(set(person_refs))
    if not refs:
        return 0
    parked = list((await session.execute(
        select(Screening).where(Screening.person_ref.in_(refs), Screening.parked, ~Screening.reversed)  # type: ignore[attr-defined]
        .order_by(Screening.discharge_date).with_for_update()
    )).scalars())
    return await _rescreen(session, settings, refs, parked)


async def _rescreen(session: AsyncSession, settings: ServiceSettings, refs: list[str],
                    parked: list[Screening]) -> int:
    if not parked:
        return 0
    facts = await PersonFacts.load(session, refs)
    outgoing, changed = [], []
    for screening in parked:
        settlement = SettlementReceived.model_validate(screening.settlement)
        decision, terms = facts.decide(screening.person_ref, settlement)
        if decision.eligible == screening.eligible and decision.reason.value == screening.reason:
            continue
        changed.append(_screening_row(screening.person_ref, settlement, decision, terms))
        with tracer.start_as_current_span("settlement rescreened") as span:
            _annotate(span, settlement.settlement_id, decision, rescreened=True)
            data = facts.decided_event(screening.person_ref, settlement, decision, terms, rescreened=True)
            outgoing.append(Outgoing(ELIGIBILITY_DECIDED, Envelope.wrap(
                data, person_ref=screening.person_ref, producer="eligibility"), span))
    if changed:
        stmt = insert(Screening).values(changed)
        await session.execute(stmt.on_conflict_do_update(
            index_elements=[Screening.settlement_id],
            set_={c: stmt.excluded[c] for c in ("eligible", "reason", "category", "parked", "consent_lookback",
                                                "lookback_policy_id", "lookback_policy_version", "decided_at")},
        ))
        await add_events(session, settings, outgoing)
    return len(changed)


async def record_policies(session: AsyncSession, settings: ServiceSettings, events: Sequence[Event]) -> None:
    """Consumer handler for policy.published: keep each version's terms, then screen again the settlements of
    its region and period parked for want of a consent in time, which its lookback may now cover."""
    published = [e.data for e in events if isinstance(e.data, PolicyPublished)]
    if not published:
        return
    await session.execute(insert(PolicyTermsRecord).on_conflict_do_nothing(), [{
        "policy_id": p.policy_id, "version": p.policy_version, "region_code": p.region_code,
        "effective_from": p.effective_from, "effective_to": p.effective_to,
        "consent_lookback": p.consent_lookback.value, "published_at": p.published_at} for p in published])
    for policy in published:
        period = [Screening.discharge_date >= policy.effective_from]
        if policy.effective_to is not None:
            period.append(Screening.discharge_date <= policy.effective_to)
        parked = list((await session.execute(
            select(Screening).join(Person, Person.person_ref == Screening.person_ref)  # type: ignore[arg-type]
            .where(Person.district_code == policy.region_code, Screening.parked, ~Screening.reversed,  # type: ignore[arg-type]
                   Screening.reason.in_(LOOKBACK_REASONS), *period)  # type: ignore[attr-defined]
            .order_by(Screening.discharge_date).with_for_update(of=Screening)  # type: ignore[arg-type]
        )).scalars())
        await _rescreen(session, settings, list({s.person_ref for s in parked}), parked)
