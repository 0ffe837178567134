"""The bank's answer for a key, applied to a payment: every case of the rule, as a table."""

import pytest
from disbursement.domain.payment import (
    Alarm,
    AttemptStatus,
    BankWord,
    PaymentStatus,
    Verdict,
    may_reissue,
    move,
    on_bank_answer,
    on_cancel,
)

P, A, W = PaymentStatus, AttemptStatus, BankWord
CURRENT = {"current": True, "settled_elsewhere": False, "quiet": True}
OLDER = {"current": False, "settled_elsewhere": False, "quiet": True}
PAID_BY_ANOTHER = {"current": False, "settled_elsewhere": True, "quiet": True}
IN_TRANSIT = {"current": True, "settled_elsewhere": False, "quiet": False}

ANSWERS = [
    # (payment, attempt, word, context) -> Verdict
    # the normal life
    (P.SENDING, A.UNKNOWN, W.ACCEPTED, CURRENT, Verdict(P.ACCEPTED, A.ACCEPTED)),
    (P.ACCEPTED, A.ACCEPTED, W.SETTLED, CURRENT, Verdict(P.SETTLED, A.SETTLED, "settled")),
    (P.SENDING, A.UNKNOWN, W.SETTLED, CURRENT, Verdict(P.SETTLED, A.SETTLED, "settled")),
    (P.ACCEPTED, A.ACCEPTED, W.FAILED, CURRENT, Verdict(P.FAILED, A.FAILED, "failed")),
    (P.PENDING, A.UNKNOWN, W.ACCEPTED, CURRENT, Verdict(P.ACCEPTED, A.ACCEPTED)),  # retry queued, bank had it
    # duplicate and overtaken news changes nothing
    (P.SETTLED, A.SETTLED, W.SETTLED, CURRENT, Verdict(P.SETTLED, A.SETTLED)),
    (P.SETTLED, A.SETTLED, W.ACCEPTED, CURRENT, Verdict(P.SETTLED, A.SETTLED)),
    (P.FAILED, A.FAILED, W.FAILED, CURRENT, Verdict(P.FAILED, A.FAILED)),
    (P.FAILED, A.FAILED, W.ACCEPTED, CURRENT, Verdict(P.FAILED, A.FAILED)),
    (P.ACCEPTED, A.ACCEPTED, W.ACCEPTED, CURRENT, Verdict(P.ACCEPTED, A.ACCEPTED)),
    (P.SETTLED, A.SETTLED, W.FAILED, CURRENT, Verdict(P.SETTLED, A.SETTLED)),
    # a failed payment is not deaf
    (P.FAILED, A.FAILED, W.SETTLED, CURRENT, Verdict(P.SETTLED, A.SETTLED, "settled")),
    (P.PENDING, A.FAILED, W.SETTLED, OLDER, Verdict(P.SETTLED, A.SETTLED, "settled")),  # before attempt 2 goes
    (P.ACCEPTED, A.FAILED, W.SETTLED, OLDER, Verdict(P.SETTLED, A.SETTLED, "settled")),
    # two attempts paid
    (P.SETTLED, A.FAILED, W.SETTLED, PAID_BY_ANOTHER, Verdict(P.SETTLED, A.SETTLED, alarm=Alarm.DOUBLE_PAYMENT)),
    (P.SETTLED, A.UNKNOWN, W.SETTLED, PAID_BY_ANOTHER, Verdict(P.SETTLED, A.SETTLED, alarm=Alarm.DOUBLE_PAYMENT)),
    (P.SETTLED, A.UNKNOWN, W.ACCEPTED, PAID_BY_ANOTHER, Verdict(P.SETTLED, A.ACCEPTED, recall=True)),
    (P.SETTLED, A.UNKNOWN, W.FAILED, PAID_BY_ANOTHER, Verdict(P.SETTLED, A.FAILED)),
    # money for a cancelled case is recorded as paid, with an alarm (calculation opens the recovery)
    (P.CANCELLED, A.ABSENT, W.SETTLED, CURRENT, Verdict(P.SETTLED, A.SETTLED, "settled", Alarm.PAID_AFTER_CANCEL)),
    (P.CANCELLING, A.UNKNOWN, W.SETTLED, CURRENT,
     Verdict(P.SETTLED, A.SETTLED, "settled", Alarm.PAID_AFTER_CANCEL)),
    (P.CANCELLED, A.ABSENT, W.ACCEPTED, CURRENT, Verdict(P.CANCELLED, A.ACCEPTED, recall=True)),
    # a cancellation waits for the bank's word
    (P.CANCELLING, A.UNKNOWN, W.ACCEPTED, CURRENT, Verdict(P.CANCELLING, A.ACCEPTED, recall=True)),
    (P.CANCELLING, A.ACCEPTED, W.FAILED, CURRENT, Verdict(P.CANCELLED, A.FAILED, "cancelled")),
    (P.CANCELLING, A.UNKNOWN, W.NOT_RECEIVED, CURRENT, Verdict(P.CANCELLED, A.ABSENT, "cancelled")),
    (P.CANCELLING, A.UNKNOWN, W.NOT_RECEIVED, IN_TRANSIT, Verdict(P.CANCELLING, A.UNKNOWN)),
    # "never received" counts only once no call can still arrive
    (P.SENDING, A.UNKNOWN, W.NOT_RECEIVED, IN_TRANSIT, Verdict(P.SENDING, A.UNKNOWN)),
    (P.SENDING, A.UNKNOWN, W.NOT_RECEIVED, CURRENT, Verdict(P.PENDING, A.UNKNOWN)),
    (P.PENDING, A.UNKNOWN, W.NOT_RECEIVED, CURRENT, Verdict(P.PENDING, A.UNKNOWN)),
    (P.PENDING, A.OPEN, W.NOT_RECEIVED, CURRENT, Verdict(P.PENDING, A.OPEN)),
    (P.SETTLED, A.UNKNOWN, W.NOT_RECEIVED, PAID_BY_ANOTHER, Verdict(P.SETTLED, A.ABSENT)),
    (P.ACCEPTED, A.ACCEPTED, W.NOT_RECEIVED, IN_TRANSIT, Verdict(P.ACCEPTED, A.ACCEPTED)),
    (P.ACCEPTED, A.ACCEPTED, W.NOT_RECEIVED, CURRENT, Verdict(P.ACCEPTED, A.ACCEPTED, alarm=Alarm.CONTRADICTION)),
    (P.SETTLED, A.SETTLED, W.NOT_RECEIVED, CURRENT, Verdict(P.SETTLED, A.SETTLED, alarm=Alarm.CONTRADICTION)),
    # answers that cannot apply change nothing, and never raise
    (P.AWAITING_ACCOUNT, A.OPEN, W.ACCEPTED, CURRENT, Verdict(P.AWAITING_ACCOUNT, A.ACCEPTED)),
    (P.AWAITING_ACCOUNT, A.OPEN, W.FAILED, CURRENT, Verdict(P.AWAITING_ACCOUNT, A.FAILED)),
    (P.FAILED, A.FAILED, W.NOT_RECEIVED, CURRENT, Verdict(P.FAILED, A.FAILED)),
    (P.PENDING, A.FAILED, W.FAILED, OLDER, Verdict(P.PENDING, A.FAILED)),
]


@pytest.mark.parametrize(("payment", "attempt", "word", "context", "verdict"), ANSWERS,
                         ids=[f"{p}-{a}-{w}-{i}" for i, (p, a, w, _, _) in enumerate(ANSWERS)])
def test_the_banks_answer(payment: PaymentStatus, attempt: AttemptStatus, word: BankWord, context: dict[str, bool],
                          verdict: Verdict) -> None:
    assert on_bank_answer(payment, attempt, word, **context) == verdict


def test_no_answer_ever_raises_and_every_move_is_legal() -> None:
    for payment in PaymentStatus:
        for attempt in AttemptStatus:
            for word in BankWord:
                for current in (True, False):
                    for elsewhere in (True, False):
                        for quiet in (True, False):
                            verdict = on_bank_answer(payment, attempt, word, current=current,
                                                     settled_elsewhere=elsewhere, quiet=quiet)
                            assert move(payment, verdict.payment) is verdict.payment


def test_once_settled_always_settled() -> None:
    for attempt in AttemptStatus:
        for word in BankWord:
            verdict = on_bank_answer(P.SETTLED, attempt, word, current=True, settled_elsewhere=False, quiet=True)
            assert verdict.payment is P.SETTLED


CANCELS = [
    (P.AWAITING_ACCOUNT, A.OPEN, Verdict(P.CANCELLED, A.OPEN, "cancelled")),
    (P.PENDING, A.OPEN, Verdict(P.CANCELLED, A.OPEN, "cancelled")),  # never handed to the bank
    (P.FAILED, A.FAILED, Verdict(P.CANCELLED, A.FAILED, "cancelled")),
    (P.PENDING, A.UNKNOWN, Verdict(P.CANCELLING, A.UNKNOWN)),  # timed out: the bank may hold it
    (P.SENDING, A.UNKNOWN, Verdict(P.CANCELLING, A.UNKNOWN)),
    (P.ACCEPTED, A.ACCEPTED, Verdict(P.CANCELLING, A.ACCEPTED, recall=True)),
    (P.SETTLED, A.SETTLED, Verdict(P.SETTLED, A.SETTLED)),  # paid: calculation recovers it
    (P.CANCELLED, A.OPEN, Verdict(P.CANCELLED, A.OPEN)),
    (P.CANCELLING, A.UNKNOWN, Verdict(P.CANCELLING, A.UNKNOWN)),
]


@pytest.mark.parametrize(("payment", "attempt", "verdict"), CANCELS, ids=[f"{p}-{a}" for p, a, _ in CANCELS])
def test_a_cancellation(payment: PaymentStatus, attempt: AttemptStatus, verdict: Verdict) -> None:
    assert on_cancel(payment, attempt) == verdict
    assert move(payment, verdict.payment) is verdict.payment


@pytest.mark.parametrize(("earlier", "allowed"), [
    ([], True), ([A.FAILED], True), ([A.FAILED, A.ABSENT], True),
    ([A.UNKNOWN], False), ([A.ACCEPTED], False), ([A.SETTLED], False), ([A.FAILED, A.OPEN], False),
])
def test_a_reissue_waits_for_every_earlier_attempt(earlier: list[AttemptStatus], allowed: bool) -> None:
    assert may_reissue(earlier) is allowed
