"""Who is eligible on the date of care (DESIGN.md section 4). Pure: no I/O.

Eligible on discharge date D when the registry lists an assisted category valid on D and a consent
covers D. A consent covers D when signed on or before D (or, with calendar-year lookback, signed later
in D's year) and not revoked on or before D. Anything else is parked and screened again when the
person's registry entry or consent changes, or when a policy version for their district is published.

The lookback is a flag of the region's policy, versioned with it: the policy version that covers the person's
district on D says it (the same choice calculation makes: latest effective_from, then highest version). While
no policy of the district covering D is known, the strict `none` applies: a settlement it parks is screened
again when the policy arrives, whereas one let through by a guess could not be taken back.
"""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum
from typing import Any

from shared.contracts.events import SettlementReceived
from shared.contracts.types import Category, ConsentLookback

# The most protective category wins when several are valid on the same day.
_PRIORITY = [Category.EXTREME_POVERTY, Category.SUBSISTENCE, Category.LOW_INCOME]


class Reason(StrEnum):
    ELIGIBLE = "eligible"
    NOT_REGISTERED = "not_registered"
    CATEGORY_NOT_VALID_ON_DATE = "category_not_valid_on_date"
    NO_CONSENT = "no_consent"
    CONSENT_REVOKED = "consent_revoked"


DEFAULT_LOOKBACK = ConsentLookback.NONE  # no policy known yet for the district and date


@dataclass(frozen=True)
class PolicyTerms:
    """What eligibility keeps of a published policy version (policy.published)."""

    policy_id: str
    version: int
    region_code: str
    effective_from: date
    effective_to: date | None
    consent_lookback: ConsentLookback

    def covers(self, region_code: str, on: date) -> bool:
        return (self.region_code == region_code and self.effective_from <= on
                and (self.effective_to is None or on <= self.effective_to))


def terms_for(terms: Iterable[PolicyTerms], region_code: str | None, on: date) -> PolicyTerms | None:
    """The policy version covering a district on a date: latest effective_from, then highest version."""
    if region_code is None:
        return None
    covering = [t for t in terms if t.covers(region_code, on)]
    return max(covering, key=lambda t: (t.effective_from, t.version), default=None)


@dataclass(frozen=True)
class RegistryPeriod:
    """An assisted category the registry lists a person in, from a date, and to one if it ends."""

    category: str
    valid_from: date
    valid_to: date | None = None

    def covers(self, on: date) -> bool:
        return self.valid_from <= on and (self.valid_to is None or on <= self.valid_to)


@dataclass(frozen=True)
class Consent:
    signed_on: date
    revoked_on: date | None = None

    def signed_for(self, on: date, lookback: ConsentLookback) -> bool:
        """Signed in time for `on`, revocation aside."""
        return self.signed_on <= on or (lookback is ConsentLookback.CALENDAR_YEAR and self.signed_on.year == on.year)

    def revoked_by(self, on: date) -> bool:
        return self.revoked_on is not None and self.revoked_on <= on


@dataclass(frozen=True)
class EligibilityDecision:
    eligible: bool
    reason: Reason
    category: Category | None
    parked: bool
    lookback: ConsentLookback | None = None  # the lookback the consents were judged by, when they were


def _parked(reason: Reason, lookback: ConsentLookback | None = None) -> EligibilityDecision:
    return EligibilityDecision(False, reason, None, parked=True, lookback=lookback)


def decide(periods: Sequence[RegistryPeriod], consents: Sequence[Consent], on: date,
           lookback: ConsentLookback = DEFAULT_LOOKBACK) -> EligibilityDecision:
    """The decision for a settlement discharged on `on`."""
    if not periods:
        return _parked(Reason.NOT_REGISTERED)
    valid = {Category(p.category) for p in periods if p.covers(on)}
    if not valid:
        return _parked(Reason.CATEGORY_NOT_VALID_ON_DATE)
    in_time = [c for c in consents if c.signed_for(on, lookback)]
    if not in_time:
        return _parked(Reason.NO_CONSENT, lookback)
    if all(c.revoked_by(on) for c in in_time):
        return _parked(Reason.CONSENT_REVOKED, lookback)
    category = next(c for c in _PRIORITY if c in valid)
    return EligibilityDecision(True, Reason.ELIGIBLE, category, parked=False, lookback=lookback)


def should_rescreen(previous: EligibilityDecision, new: EligibilityDecision) -> bool:
    """A new decision is worth emitting only when the outcome or its reason changed."""
    return (previous.eligible, previous.reason) != (new.eligible, new.reason)


@dataclass(frozen=True)
class PersonArea:
    """Where the registry lists a person."""

    district_code: str
    subdistrict_code: str


@dataclass
class Facts:
    """What screening knows of a set of persons: where they live, their category periods and consents, and the
    published policy terms of their districts."""

    areas: dict[str, PersonArea] = field(default_factory=dict)
    periods: dict[str, list[RegistryPeriod]] = field(default_factory=dict)
    consents: dict[str, list[Consent]] = field(default_factory=dict)
    terms: list[PolicyTerms] = field(default_factory=list)

    def screen(self, person_ref: str, on: date) -> tuple[EligibilityDecision, PolicyTerms | None]:
        """The decision for a settlement of the person discharged on `on`, judged by the consent lookback of
        the policy covering their district that day (the strict default while none is known), and that policy
        version when the lookback mattered to the decision."""
        area = self.areas.get(person_ref)
        terms = terms_for(self.terms, area.district_code if area else None, on)
        decision = decide(self.periods.get(person_ref, []), self.consents.get(person_ref, []), on,
                          terms.consent_lookback if terms else DEFAULT_LOOKBACK)
        return decision, terms if decision.lookback is not None else None


@dataclass(frozen=True)
class Screening:
    """One settlement's decision, the person it is about, and the policy terms whose lookback it was judged by."""

    person_ref: str
    settlement: SettlementReceived
    decision: EligibilityDecision
    terms: PolicyTerms | None = None
    settlement_json: dict[str, Any] | None = field(default=None, compare=False, repr=False)
    """The settlement in its JSON form (`model_dump(mode="json")`) when it is at hand: as it came off the wire."""

    def changes(self, eligible: bool, reason: str) -> bool:
        """Whether this decision is worth emitting over the one stored (`eligible`, `reason`)."""
        return should_rescreen(EligibilityDecision(eligible, Reason(reason), None, parked=not eligible),
                               self.decision)
