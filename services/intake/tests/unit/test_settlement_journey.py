"""The Settlement aggregate's journey rule, table-driven: the status moves only forward, a failed payment can
still become paid, a reversal is final, and the eligibility reason outlives the later steps."""

import uuid
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from intake.domain.journey import Journey
from intake.domain.settlement import News, Settlement

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


DOWNSTREAM = [J.PARKED, J.ELIGIBLE, J.CALCULATED, J.NOTHING_TO_PAY, J.APPROVED, J.REJECTED, J.CANCELLED,
              J.PAYMENT_FAILED, J.PAID]  # every status a downstream event can bring (service_layer.journey)


def test_a_batch_of_facts_folded_into_news_is_the_same_as_learning_them_in_turn() -> None:
    """The status view applies each settlement's facts of a batch at once (`News`): from every status, for every
    sequence of up to three downstream facts, the outcome and the steps equal learning each fact by itself."""
    sequences: list[list[Journey]] = [[a] for a in DOWNSTREAM]
    sequences += [[*s, b] for s in sequences for b in DOWNSTREAM]
    sequences += [[*s, c] for s in sequences if len(s) == 2 for c in DOWNSTREAM]
    for start in Journey:
        for sequence in sequences:
            facts = [(status, f"why-{i}", Decimal(i + 1) if status is J.CALCULATED else None)
                     for i, status in enumerate(sequence)]
            one_by_one, at_once = (Settlement(uuid.uuid4(), "H001", "S-1", "ref", start, "before", "screened-before",
                                              Decimal("5.00")) for _ in range(2))
            for status, reason, assistance in facts:
                one_by_one.learn(status, reason, assistance)
            [news] = News.fold((at_once.id, *fact) for fact in facts)
            at_once.learn_news(news)
            assert (at_once.status, at_once.status_reason, at_once.eligibility_reason, at_once.assistance,
                    at_once.steps) == (one_by_one.status, one_by_one.status_reason, one_by_one.eligibility_reason,
                                       one_by_one.assistance, one_by_one.steps), (start, sequence)
