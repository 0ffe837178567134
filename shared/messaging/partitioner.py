"""Which partition a keyed message goes to: Kafka's murmur2 of the key, as every Kafka client computes it.

aiokafka's default partitioner computes the same hash a byte at a time in Python, about 10-20 µs for a
64-character person_ref: one of the larger costs of every message a service sends. This one reads the key as
little-endian 32-bit words in one call and mixes them word by word; the result is the same for every key
(tests hold it to aiokafka's), so a person's events keep their partition, and their order, whichever version of
the service sent them.
"""

import random
import struct
from collections.abc import Sequence

_SEED, _M, _MASK = 0x9747B28C, 0x5BD1E995, 0xFFFFFFFF


def murmur2(data: bytes) -> int:
    """Kafka's murmur2 (org.apache.kafka.common.utils.Utils.murmur2) of `data`, as an unsigned 32-bit int."""
    length = len(data)
    h = (_SEED ^ length) & _MASK
    words = length >> 2
    for k in struct.unpack_from(f"<{words}I", data):
        k = (k * _M) & _MASK
        h = ((h * _M) ^ (((k ^ (k >> 24)) * _M) & _MASK)) & _MASK
    if length & 3:  # the last one to three bytes
        h = ((h ^ int.from_bytes(data[words * 4:], "little")) * _M) & _MASK
    h ^= h >> 13
    h = (h * _M) & _MASK
    return h ^ (h >> 15)


def partition_for(key: bytes | None, all_partitions: Sequence[int], available: Sequence[int]) -> int:
    """aiokafka's partitioner interface: a keyed message by murmur2, an unkeyed one at random."""
    if key is None:
        return random.choice(available or all_partitions)
    return all_partitions[(murmur2(key) & 0x7FFFFFFF) % len(all_partitions)]
