"""The runner's poll: what the client fetched in advance, topped up with what reached the broker meanwhile
(the fetch that taking the buffer sent), in order per partition and never past the batch size."""

from typing import Any, cast

import pytest
from aiokafka import TopicPartition

from shared.db import Database
from shared.messaging.consumer import ConsumerRunner
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
