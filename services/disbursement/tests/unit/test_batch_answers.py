"""How a batch answer from the bank is read per transfer: a word, a refusal of that transfer alone, or nothing
the payer may act on (sent again later under the same key, after asking the bank)."""

import pytest
from disbursement.adapters.bank import BankResult, BankStatus, BatchAnswer, classify

A, B, C = "k-1", "k-2", "k-3"
Item = tuple[str, str, str | None, str | None]


def word(key: str, status: BankStatus, reason: str | None = None) -> BankResult:
    return BankResult(key, f"REF-{key}", status, reason)


@pytest.mark.parametrize(("sent", "items", "results", "refused", "retry"), [
    pytest.param([A, B], [(A, "accepted", "REF-k-1", None), (B, "accepted", "REF-k-2", None)],
                 {A: word(A, BankStatus.ACCEPTED), B: word(B, BankStatus.ACCEPTED)}, {}, set(), id="all accepted"),
    pytest.param([A, B, C], [(A, "accepted", "REF-k-1", None), (B, "rejected", None, "idempotency_key_reused"),
                             (C, "accepted", "REF-k-3", None)],
                 {A: word(A, BankStatus.ACCEPTED), C: word(C, BankStatus.ACCEPTED)}, {B: "idempotency_key_reused"},
                 set(), id="a refused transfer among accepted ones fails alone"),
    pytest.param([A, B], [(A, "settled", "REF-k-1", None), (B, "failed", "REF-k-2", "account_closed")],
                 {A: word(A, BankStatus.SETTLED), B: word(B, BankStatus.FAILED, "account_closed")}, {}, set(),
                 id="keys booked before answer with their final word"),
    pytest.param([A, B], [(A, "accepted", "REF-k-1", None), (B, "unavailable", None, None)],
                 {A: word(A, BankStatus.ACCEPTED)}, {}, {B}, id="not booked: sent again"),
    pytest.param([A, B], [(A, "accepted", "REF-k-1", None)], {A: word(A, BankStatus.ACCEPTED)}, {}, {B},
                 id="a key the answer leaves out is never guessed"),
    pytest.param([A], [(A, "accepted", "REF-k-1", None), (A, "failed", "REF-k-1", "account_closed")], {}, {}, {A},
                 id="two different words for one key: neither is taken"),
    pytest.param([A], [(A, "accepted", "REF-k-1", None), (A, "accepted", "REF-k-1", None)],
                 {A: word(A, BankStatus.ACCEPTED)}, {}, set(), id="the same word twice is one word"),
    pytest.param([A], [(A, "unreadable:XXXX", None, None)], {}, {}, {A}, id="an unreadable status is sent again"),
    pytest.param([A], [(A, "accepted", "REF-k-1", None), ("not-sent", "settled", "REF-x", None)],
                 {A: word(A, BankStatus.ACCEPTED)}, {}, set(), id="a key we did not send is ignored"),
    pytest.param([A], [(A, "rejected", None, None)], {}, {A: "rejected"}, set(), id="a refusal without a reason"),
    pytest.param([A, B], [], {}, {}, {A, B}, id="an empty answer leaves every transfer to retry"),
])
def test_a_batch_answer_is_read_per_transfer(sent: list[str], items: list[Item], results: dict[str, BankResult],
                                             refused: dict[str, str], retry: set[str]) -> None:
    answer = classify(sent, items)
    assert (answer.results, answer.refused, answer.retry) == (results, refused, retry)
    assert answer.results.keys() | answer.refused.keys() | answer.retry == set(sent), "every key sent is accounted for"


def test_a_later_answer_settles_what_an_earlier_one_left_to_retry() -> None:
    answer = BatchAnswer(results={A: word(A, BankStatus.ACCEPTED)}, retry={B, C})
    answer.absorb(BatchAnswer(results={B: word(B, BankStatus.SETTLED)}, refused={C: "idempotency_key_reused"}))
    assert (set(answer.results), answer.refused, answer.retry) == ({A, B}, {C: "idempotency_key_reused"}, set())
    answer.absorb(BatchAnswer(retry={"k-4"}))
    assert answer.retry == {"k-4"}
