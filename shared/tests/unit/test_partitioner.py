"""Our partitioner sends every key where Kafka's Java client and aiokafka's default partitioner send it."""

import random

import pytest
from aiokafka.partitioner import DefaultPartitioner
from aiokafka.partitioner import murmur2 as aiokafka_murmur2

from shared.messaging.partitioner import murmur2, partition_for


@pytest.mark.parametrize(("key", "java"), [  # Kafka's own test vectors (UtilsTest), as the Java int
    (b"21", -973932308),
    (b"foobar", -790332482),
    (b"a-little-bit-long-string", -985981536),
    (b"a-little-bit-longer-string", -1486304829),
    (b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971),
    (b"abc", 479470107),
])
def test_murmur2_is_kafkas(key: bytes, java: int) -> None:
    assert murmur2(key) == java & 0xFFFFFFFF


def test_every_key_goes_to_the_partition_aiokafka_chooses() -> None:
    rng = random.Random(14)
    partitions = list(range(6))
    default = DefaultPartitioner()
    for length in [*range(70), *[64] * 200]:  # a person_ref is 64 characters; every tail length too
        key = bytes(rng.getrandbits(8) for _ in range(length))
        assert murmur2(key) == aiokafka_murmur2(key) & 0xFFFFFFFF, key
        assert partition_for(key, partitions, partitions) == default(key, partitions, partitions)


def test_an_unkeyed_message_goes_to_an_available_partition() -> None:
    assert partition_for(None, [0, 1, 2], [2]) == 2
    assert partition_for(None, [0, 1, 2], []) in {0, 1, 2}
