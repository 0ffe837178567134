"""Screening settlements: on arrival (from Kafka) and again when a person's registry entry or consent changes, or
when a policy version's consent lookback may now cover what was parked. The decision is the domain's
(domain.rules); this layer loads the facts a batch at a time, stores the decisions and emits them."""

from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any
from uuid import UUID

from opentelemetry.trace import Span

from eligibility.adapters.metrics import DECISIONS
from eligibility.adapters.tables import ScreeningRow
from eligibility.domain.rules import Facts, Screening
from eligibility.service_layer.unit_of_work import EligibilityUnitOfWork
from shared.contracts.events import EligibilityDecided, PolicyPublished, SettlementReceived, SettlementReversed
from shared.contracts.topics import ELIGIBILITY_DECIDED
from shared.messaging.consumer import Event
from shared.telemetry import tracer

LOOKBACK_REASONS = ("no_consent", "consent_revoked")  # the parked reasons a consent lookback can change


def _decided(facts: Facts, s: Screening, rescreened: bool) -> EligibilityDecided:
    d, terms = s.decision, s.terms
    area = facts.areas.get(s.person_ref) if d.eligible else None
    return EligibilityDecided(
        settlement=s.settlement, eligible=d.eligible, reason=d.reason.value,
        category=d.category.value if d.category else None,
        district_code=area.district_code if area else None, subdistrict_code=area.subdistrict_code if area else None,
        rescreened=rescreened, consent_lookback=d.lookback,
        lookback_policy_id=terms.policy_id if terms else None,
        lookback_policy_version=terms.version if terms else None,
    )


def _decided_json(facts: Facts, s: Screening, rescreened: bool, settlement: dict[str, Any]) -> dict[str, Any]:
    """What `_decided(...).model_dump(mode="json")` writes (the same keys in the same order), made from the
    decision and the settlement's JSON form as it was received, without building and dumping the model (its
    four amounts and the settlement a second time). `test_a_decision_is_written_as_its_model_dumps_it` holds
    the two to each other."""
    d, terms = s.decision, s.terms
    area = facts.areas.get(s.person_ref) if d.eligible else None
    return {
        "settlement": settlement, "eligible": d.eligible, "reason": d.reason.value,
        "category": d.category.value if d.category else None,
        "district_code": area.district_code if area else None,
        "subdistrict_code": area.subdistrict_code if area else None,
        "rescreened": rescreened, "consent_lookback": d.lookback.value if d.lookback else None,
        "lookback_policy_id": terms.policy_id if terms else None,
        "lookback_policy_version": terms.version if terms else None,
    }


_RECEIVED_KEYS = SettlementReceived.model_fields.keys()


def _received_json(event: Event) -> dict[str, Any] | None:
    """The settlement's JSON form as it came: the envelope's `data` when it is the current version with the
    model's keys (validated on the way in, written by `model_dump(mode="json")`'s rules), else None."""
    data = event.envelope.data
    if event.envelope.schema_version == SettlementReceived.schema_version and data.keys() == _RECEIVED_KEYS:
        return data
    return None


def _screen(facts: Facts, person_ref: str, settlement: SettlementReceived,
            settlement_json: dict[str, Any] | None = None) -> Screening:
    decision, terms = facts.screen(person_ref, settlement.discharge_date)
    return Screening(person_ref, settlement, decision, terms, settlement_json)


def _annotate(span: Span, s: Screening, rescreened: bool = False) -> None:
    DECISIONS.labels(s.decision.reason.value, str(rescreened).lower()).inc()
    _attributes(span, s)


def _attributes(span: Span, s: Screening) -> None:
    span.set_attribute("settlement.id", str(s.settlement.settlement_id))
    span.set_attribute("eligibility.reason", s.decision.reason.value)


async def screen_events(uow: EligibilityUnitOfWork, events: Sequence[Event]) -> None:
    """Consumer handler for settlement.received: decide each new settlement, forward reversals."""
    # One decision per settlement: a copy later in the batch (or heard in an earlier one) changes nothing.
    first: dict[UUID, tuple[Event, SettlementReceived]] = {}
    for e in events:
        if isinstance(e.data, SettlementReceived):
            first.setdefault(e.data.settlement_id, (e, e.data))
    arrivals = list(first.values())
    facts = await uow.registry.facts(e.envelope.person_ref for e, _ in arrivals)
    screenings = [(e, _screen(facts, e.envelope.person_ref, s, _received_json(e))) for e, s in arrivals]
    # A settlement id seen before (a hospital retry that slipped past intake) keeps its first decision.
    stored = await uow.screenings.add([s for _, s in screenings])
    counted: Counter[str] = Counter()  # the metric once a reason per batch, not once a settlement
    for event, screening in screenings:
        counted[screening.decision.reason.value] += 1
        _attributes(event.span, screening)
        if screening.settlement.settlement_id in stored:
            if screening.settlement_json is None:
                uow.publish(ELIGIBILITY_DECIDED, screening.person_ref,
                            _decided(facts, screening, rescreened=False), event.span)
            else:
                uow.publish_json(ELIGIBILITY_DECIDED, screening.person_ref, EligibilityDecided,
                                 _decided_json(facts, screening, False, screening.settlement_json), event.span)
    for reason, count in counted.items():
        DECISIONS.labels(reason, "false").inc(count)
    for event in events:
        if isinstance(event.data, SettlementReversed):
            await uow.screenings.reverse(event.data.settlement_id)
            event.span.set_attribute("settlement.id", str(event.data.settlement_id))
            uow.publish(ELIGIBILITY_DECIDED, event.envelope.person_ref, event.data, event.span)


async def rescreen_parked(uow: EligibilityUnitOfWork, person_refs: Iterable[str]) -> int:
    """Screen the persons' parked settlements again; emit a decision for each whose outcome changed."""
    refs = list(set(person_refs))
    if not refs:
        return 0
    return await _rescreen(uow, refs, await uow.screenings.parked(refs))


async def _rescreen(uow: EligibilityUnitOfWork, refs: list[str], parked: list[ScreeningRow]) -> int:
    if not parked:
        return 0
    facts = await uow.registry.facts(refs)
    changed = []
    for row in parked:
        screening = _screen(facts, row.person_ref, SettlementReceived.model_validate(row.settlement))
        if not screening.changes(row.eligible, row.reason):
            continue
        changed.append(screening)
        with tracer.start_as_current_span("settlement rescreened") as span:
            _annotate(span, screening, rescreened=True)
            uow.publish(ELIGIBILITY_DECIDED, screening.person_ref, _decided(facts, screening, rescreened=True), span)
    await uow.screenings.redecide(changed)
    return len(changed)


async def record_policies(uow: EligibilityUnitOfWork, events: Sequence[Event]) -> None:
    """Consumer handler for policy.published: keep each version's terms, then screen again the settlements of
    its region and period parked for want of a consent in time, which its lookback may now cover."""
    published = [e.data for e in events if isinstance(e.data, PolicyPublished)]
    if not published:
        return
    await uow.terms.add(published)
    for policy in published:
        parked = await uow.screenings.parked_in(policy.region_code, policy.effective_from, policy.effective_to,
                                                LOOKBACK_REASONS)
        await _rescreen(uow, list({s.person_ref for s in parked}), parked)
