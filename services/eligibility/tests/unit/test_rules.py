"""The eligibility rule, table-driven."""

from datetime import date

import pytest
from eligibility.domain.rules import (
    Category,
    Consent,
    ConsentLookback,
    EligibilityDecision,
    PolicyTerms,
    Reason,
    RegistryPeriod,
    decide,
    should_rescreen,
    terms_for,
)

D = date
SUB_2026 = RegistryPeriod("subsistence", D(2026, 1, 1), D(2026, 12, 31))
SIGNED_MARCH = Consent(D(2026, 3, 1))
YEAR = ConsentLookback.CALENDAR_YEAR
NONE = ConsentLookback.NONE


@pytest.mark.parametrize(
    ("case", "periods", "consents", "on", "lookback", "reason", "category"),
    [
        ("not in the registry", [], [SIGNED_MARCH], D(2026, 5, 1), YEAR, Reason.NOT_REGISTERED, None),
        ("first day of validity", [SUB_2026], [Consent(D(2025, 6, 1))], D(2026, 1, 1), YEAR, Reason.ELIGIBLE,
         Category.SUBSISTENCE),
        ("last day of validity", [SUB_2026], [SIGNED_MARCH], D(2026, 12, 31), YEAR, Reason.ELIGIBLE,
         Category.SUBSISTENCE),
        ("day after validity", [SUB_2026], [SIGNED_MARCH], D(2027, 1, 1), YEAR, Reason.CATEGORY_NOT_VALID_ON_DATE,
         None),
        ("day before validity", [SUB_2026], [Consent(D(2025, 1, 1))], D(2025, 12, 31), YEAR,
         Reason.CATEGORY_NOT_VALID_ON_DATE, None),
        ("open-ended validity", [RegistryPeriod("low_income", D(2020, 1, 1))], [Consent(D(2020, 1, 1))],
         D(2030, 6, 1), YEAR, Reason.ELIGIBLE, Category.LOW_INCOME),
        ("the most protective category wins",
         [RegistryPeriod("low_income", D(2026, 1, 1)), RegistryPeriod("extreme_poverty", D(2026, 4, 1)), SUB_2026],
         [SIGNED_MARCH], D(2026, 5, 1), YEAR, Reason.ELIGIBLE, Category.EXTREME_POVERTY),
        ("a gap between two periods", [RegistryPeriod("subsistence", D(2026, 1, 1), D(2026, 3, 31)),
                                       RegistryPeriod("subsistence", D(2026, 6, 1))],
         [Consent(D(2026, 1, 1))], D(2026, 4, 15), YEAR, Reason.CATEGORY_NOT_VALID_ON_DATE, None),
        ("no consent at all", [SUB_2026], [], D(2026, 5, 1), YEAR, Reason.NO_CONSENT, None),
        ("consent signed on the discharge day", [SUB_2026], [Consent(D(2026, 5, 1))], D(2026, 5, 1), NONE,
         Reason.ELIGIBLE, Category.SUBSISTENCE),
        ("signed later the same year, lookback on", [SUB_2026], [Consent(D(2026, 9, 1))], D(2026, 2, 1), YEAR,
         Reason.ELIGIBLE, Category.SUBSISTENCE),
        ("signed later the same year, lookback off", [SUB_2026], [Consent(D(2026, 9, 1))], D(2026, 2, 1), NONE,
         Reason.NO_CONSENT, None),
        ("signed the next year: never covers", [RegistryPeriod("subsistence", D(2025, 1, 1))],
         [Consent(D(2026, 1, 2))], D(2025, 12, 30), YEAR, Reason.NO_CONSENT, None),
        ("revoked before discharge", [SUB_2026], [Consent(D(2026, 1, 5), D(2026, 4, 1))], D(2026, 5, 1), YEAR,
         Reason.CONSENT_REVOKED, None),
        ("revoked on the discharge day", [SUB_2026], [Consent(D(2026, 1, 5), D(2026, 5, 1))], D(2026, 5, 1), YEAR,
         Reason.CONSENT_REVOKED, None),
        ("revoked after discharge", [SUB_2026], [Consent(D(2026, 1, 5), D(2026, 5, 2))], D(2026, 5, 1), YEAR,
         Reason.ELIGIBLE, Category.SUBSISTENCE),
        ("lookback consent later revoked, care before revocation", [SUB_2026], [Consent(D(2026, 6, 1), D(2026, 8, 1))],
         D(2026, 3, 1), YEAR, Reason.ELIGIBLE, Category.SUBSISTENCE),
        ("lookback consent later revoked, care after revocation", [SUB_2026],
         [Consent(D(2026, 6, 1), D(2026, 8, 1))], D(2026, 9, 1), YEAR, Reason.CONSENT_REVOKED, None),
        ("signed again after a revocation", [SUB_2026], [Consent(D(2026, 1, 5), D(2026, 3, 1)), Consent(D(2026, 4, 1))],
         D(2026, 5, 1), NONE, Reason.ELIGIBLE, Category.SUBSISTENCE),
        ("registry is checked before consent", [SUB_2026], [], D(2027, 2, 1), YEAR,
         Reason.CATEGORY_NOT_VALID_ON_DATE, None),
    ],
)
def test_decide(case: str, periods: list[RegistryPeriod], consents: list[Consent], on: date,
                lookback: ConsentLookback, reason: Reason, category: Category | None) -> None:
    decision = decide(periods, consents, on, lookback)
    assert (decision.reason, decision.category) == (reason, category), case
    assert decision.eligible == (reason is Reason.ELIGIBLE)
    assert decision.parked == (not decision.eligible), "every ineligible settlement is parked, never dropped"


@pytest.mark.parametrize(
    ("before", "after", "emit"),
    [
        (Reason.NO_CONSENT, Reason.ELIGIBLE, True),
        (Reason.NOT_REGISTERED, Reason.NO_CONSENT, True),
        (Reason.NO_CONSENT, Reason.NO_CONSENT, False),
    ],
)
def test_should_rescreen(before: Reason, after: Reason, emit: bool) -> None:
    def decision(r: Reason) -> EligibilityDecision:
        return EligibilityDecision(r is Reason.ELIGIBLE, r, None, r is not Reason.ELIGIBLE)

    assert should_rescreen(decision(before), decision(after)) is emit


def terms(version: int, effective_from: date, lookback: ConsentLookback, region: str = "310110",
          effective_to: date | None = None) -> PolicyTerms:
    return PolicyTerms(f"p-{region}", version, region, effective_from, effective_to, lookback)


V1, V2 = terms(1, D(2026, 1, 1), YEAR), terms(2, D(2026, 7, 1), NONE)
ENDED = terms(3, D(2025, 1, 1), YEAR, effective_to=D(2025, 12, 31))


@pytest.mark.parametrize(("case", "known", "region", "on", "expected"), [
    ("nothing known yet", [], "310110", D(2026, 3, 1), None),
    ("not registered: no district", [V1], None, D(2026, 3, 1), None),
    ("the one version covering the date", [V1, V2], "310110", D(2026, 3, 1), V1),
    ("the later effective_from wins", [V1, V2], "310110", D(2026, 8, 1), V2),
    ("the first day of the new version", [V2, V1], "310110", D(2026, 7, 1), V2),
    ("another region's policy does not apply", [terms(1, D(2026, 1, 1), YEAR, region="310107")], "310110",
     D(2026, 3, 1), None),
    ("an ended version covers its own period only", [ENDED, V1], "310110", D(2025, 6, 1), ENDED),
    ("before any version", [V1], "310110", D(2025, 12, 31), None),
    ("same start: the higher version", [V1, terms(4, D(2026, 1, 1), NONE)], "310110", D(2026, 3, 1),
     terms(4, D(2026, 1, 1), NONE)),
])
def test_terms_for(case: str, known: list[PolicyTerms], region: str | None, on: date,
                   expected: PolicyTerms | None) -> None:
    assert terms_for(known, region, on) == expected, case


def test_the_default_is_strict_and_the_decision_says_which_lookback_it_used() -> None:
    later = [Consent(D(2026, 9, 1))]
    assert decide([SUB_2026], later, D(2026, 2, 1)).reason is Reason.NO_CONSENT, "no policy known: none"
    assert decide([SUB_2026], later, D(2026, 2, 1)).lookback is NONE
    assert decide([SUB_2026], later, D(2026, 2, 1), YEAR).lookback is YEAR
    assert decide([], later, D(2026, 2, 1), YEAR).lookback is None, "consents were not looked at"
