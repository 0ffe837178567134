"""The runner's poll: what the client fetched in advance, topped up with what reached the broker meanwhile
(the fetch that taking the buffer sent), in order per partition and never past the batch size; a poll that
waited for its batch is not topped up. And its offset commits: after the batch's database commit, in order,
overlapping the next batch, and finished before a rebalance or a stop."""

import asyncio
from types import SimpleNamespace
from typing import Any, cast

import pytest
from aiokafka import TopicPartition

from shared.db import Database
from shared.messaging.consumer import ConsumerRunner, _WaitForBatch
from shared.messaging.kafka import KafkaProducer
from shared.settings import ServiceSettings

P0, P1 = TopicPartition("t", 0), TopicPartition("t", 1)


class Buffer:
    """The client's side of it: each getmany answers the next scripted batch (records as offsets)."""

    def __init__(self, *answers: dict[TopicPartition, list[int]]) -> None:
        self.answers = list(answers)
        self.calls: list[tuple[int, int]] = []

    async def getmany(self, *, timeout_ms: int, max_records: int) -> dict[TopicPartition, list[int]]:
        self.calls.append((timeout_ms, max_records))
        return self.answers.pop(0) if self.answers else {}


def runner(buffer: Buffer, **settings: Any) -> ConsumerRunner[Any]:
    made = ConsumerRunner(settings=ServiceSettings(**settings), db=cast(Database, None),
                          producer=cast(KafkaProducer, None), group_id="g", topics=["t"], handler=cast(Any, None),
                          unit_of_work=cast(Any, None))
    made._consumer = cast(Any, buffer)
    return made


@pytest.mark.parametrize(("answers", "settings", "batch", "calls"), [
    ([{P0: [1, 2]}, {P0: [3], P1: [7]}], {}, {P0: [1, 2, 3], P1: [7]}, [(200, 500), (5, 498)]),
    ([{P0: [1, 2]}, {}], {}, {P0: [1, 2]}, [(200, 500), (5, 498)]),
    ([{}], {}, {}, [(200, 500)]),  # nothing came: no second wait
    ([{P0: [1, 2]}, {P1: [7]}], {"consumer_batch_max": 2}, {P0: [1, 2]}, [(200, 2)]),  # full: no room
    ([{P0: [1]}, {P1: [7]}], {"consumer_gather_ms": 0}, {P0: [1]}, [(200, 500)]),  # gathering off
])
async def test_a_poll_takes_what_reached_the_broker_during_the_last_batch(
        answers: list[dict[TopicPartition, list[int]]], settings: dict[str, Any],
        batch: dict[TopicPartition, list[int]], calls: list[tuple[int, int]]) -> None:
    buffer = Buffer(*answers)
    assert await runner(buffer, **settings)._poll() == batch
    assert buffer.calls == calls


class Waiting(Buffer):
    """A client holding nothing: the first getmany waits for the fetch that brings the batch."""

    async def getmany(self, *, timeout_ms: int, max_records: int) -> dict[TopicPartition, list[int]]:
        if not self.calls:
            await asyncio.sleep(0.01)
        return await super().getmany(timeout_ms=timeout_ms, max_records=max_records)


async def test_a_poll_that_waited_for_its_batch_applies_it_without_gathering() -> None:
    buffer = Waiting({P0: [1]}, {P1: [7]})
    assert await runner(buffer)._poll() == {P0: [1]}
    assert buffer.calls == [(200, 500)]


class Offsets:
    """The client's offset commits: each one is held until `done` is set, as a broker round trip would be."""

    def __init__(self) -> None:
        self.started: list[dict[TopicPartition, int]] = []
        self.finished: list[dict[TopicPartition, int]] = []
        self.done = asyncio.Event()

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        self.started.append(offsets)
        await self.done.wait()
        self.finished.append(offsets)


def committing(offsets: Offsets) -> ConsumerRunner[Any]:
    made = runner(Buffer())
    made._consumer = cast(Any, offsets)
    made._decode = lambda records: ([], [])  # type: ignore[method-assign]  # nothing to apply: only the offsets
    return made


def records(*offsets: int) -> list[Any]:
    return [SimpleNamespace(offset=o) for o in offsets]


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_the_offset_commit_goes_on_while_the_next_batch_is_polled_and_each_waits_for_the_one_before() -> None:
    offsets = Offsets()
    made = committing(offsets)
    await asyncio.wait_for(made._handle_batch({P0: records(3, 4)}), 1)  # returns with its commit under way
    await settle()
    assert offsets.started == [{P0: 5}] and offsets.finished == []
    second = asyncio.create_task(made._handle_batch({P0: records(8), P1: records(2)}))
    await settle()
    assert offsets.started == [{P0: 5}], "the next commit waits for the one under way"
    offsets.done.set()
    await second
    await made._offsets_committed()
    assert offsets.finished == [{P0: 5}, {P0: 9, P1: 3}]


async def test_a_rebalance_and_a_stop_wait_for_the_offset_commit_under_way() -> None:
    offsets = Offsets()
    made = committing(offsets)
    await asyncio.wait_for(made._handle_batch({P0: records(1)}), 1)
    revoked = asyncio.create_task(_WaitForBatch(made._lock, made._offsets_committed).on_partitions_revoked([P0]))
    await settle()
    assert not revoked.done()
    offsets.done.set()
    await revoked
    assert offsets.finished == [{P0: 2}]
    await made._offsets_committed()  # nothing under way any more: returns at once
