"""The Settlement aggregate's journey rule, table-driven: the status moves only forward, a failed payment can
still become paid, a reversal is final, and the eligibility reason outlives the later steps."""

import uuid
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from intake.domain.journey import Journey
from intake.domain.settlement import Settlement

J = Journey


@pytest.mark.parametrize(("facts", "status", "reason", "eligibility_reason"), [
    ([(J.PARKED, "no_consent")], J.PARKED, "no_consent", "no_consent"),
    ([(J.PARKED, "no_consent"), (J.ELIGIBLE, "eligible")], J.ELIGIBLE, "eligible", "eligible"),
    ([(J.ELIGIBLE, "eligible"), (J.CALCULATED, None), (J.APPROVED, None)], J.APPROVED, None, "eligible"),
    # a later stage heard first keeps its place: an earlier one arriving late changes neither status nor reason
    ([(J.APPROVED, None), (J.ELIGIBLE, "eligible")], J.APPROVED, None, "eligible"),
    ([(J.PAYMENT_FAILED, "account_closed"), (J.PAID, None)], J.PAID, None, None),
    ([(J.PAID, None), (J.PAYMENT_FAILED, "account_closed")], J.PAID, None, None),
    ([(J.REJECTED, "not_resident")], J.REJECTED, "not_resident", None),
])
def test_the_status_only_moves_forward(facts: list[tuple[Journey, str | None]], status: Journey,
                                       reason: str | None, eligibility_reason: str | None) -> None:
    settlement = Settlement(uuid.uuid4(), "H001", "S-1", "ref", J.RECEIVED)
    for fact, why in facts:
        settlement.learn(fact, why)
    assert (settlement.status, settlement.status_reason, settlement.eligibility_reason) == (
        status, reason, eligibility_reason)
    assert [s.status for s in settlement.steps] == [f for f, _ in facts]  # every fact is a step of the timeline
    assert settlement.events == []


def test_the_assistance_is_kept_from_the_calculation() -> None:
    settlement = Settlement(uuid.uuid4(), "H001", "S-1", "ref", J.RECEIVED)
    settlement.learn(J.CALCULATED, None, Decimal("12.30"))
    settlement.learn(J.APPROVED)
    assert settlement.assistance == Decimal("12.30")


def test_a_reversal_is_final_and_raised_once() -> None:
    settlement = Settlement(uuid.uuid4(), "H001", "S-1", "ref", J.PAID)
    settlement.reverse(None, datetime.now(UTC))
    settlement.reverse("again", datetime.now(UTC))
    settlement.learn(J.PAID)
    assert (settlement.status, settlement.status_reason) == (J.REVERSED, "reversed_by_hospital")
    assert [type(e).__name__ for e in settlement.events] == ["SettlementReversed"]
