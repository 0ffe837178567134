"""New ids are time-ordered (UUID version 7) and unique, in the order PostgreSQL's B-tree sorts them."""

import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from shared.ids import new_id


def test_ids_made_one_after_another_increase_and_never_repeat() -> None:
    ids = [new_id() for _ in range(20_000)]  # many within one millisecond: the counter keeps them in order
    assert all(a < b for a, b in zip(ids, ids[1:], strict=False))
    assert len(set(ids)) == len(ids)


def test_ids_sort_by_their_bytes_as_by_their_value() -> None:
    """PostgreSQL compares uuid values byte by byte: the order above is the index's order."""
    ids = [new_id() for _ in range(1_000)]
    assert sorted(ids, key=lambda i: i.bytes) == ids


@pytest.mark.parametrize("pause_s", [0.0, 0.002, 0.02])
def test_an_id_carries_the_millisecond_it_was_made(pause_s: float) -> None:
    before = time.time_ns() // 1_000_000
    first = new_id()
    time.sleep(pause_s)
    second = new_id()
    after = time.time_ns() // 1_000_000
    for made in (first, second):
        assert isinstance(made, uuid.UUID)
        assert (made.version, made.variant) == (7, uuid.RFC_4122)
        assert before <= made.int >> 80 <= after
    assert first < second


def test_ids_of_many_threads_are_unique() -> None:
    with ThreadPoolExecutor(4) as pool:
        batches = list(pool.map(lambda _: [new_id() for _ in range(5_000)], range(8)))
    every = [i for batch in batches for i in batch]
    assert len(set(every)) == len(every)
    for batch in batches:
        assert batch == sorted(batch)
