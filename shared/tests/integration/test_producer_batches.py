"""KafkaProducer.publish's batches per partition (ADR 0049) against the real broker: every message once, on the
partition `send()` chooses, in order per partition, with the idempotent producer's sequence numbers."""

import secrets
from collections import defaultdict

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from shared.messaging.kafka import KafkaProducer, Message
from shared.messaging.partitioner import partition_for
from shared.settings import ServiceSettings
from shared.testing import unique_prefix

pytestmark = pytest.mark.integration
PARTITIONS = 6


async def test_publish_sends_every_message_once_on_its_key_partition_in_order() -> None:
    settings = ServiceSettings(service_name="probe", topic_prefix=unique_prefix("batches"))
    topic = settings.topic("batches")
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=PARTITIONS, replication_factor=1)])
    finally:
        await admin.close()
    keys = [secrets.token_hex(32) for _ in range(40)]
    big_key = keys[0]
    messages = []
    for i in range(400):
        key = keys[i % len(keys)]
        # Three 100 kB messages of one key among the small ones: its partition's batch (256 kB) fills up, and
        # its messages go in two batches, the second queued behind the first.
        big = key == big_key and i in (0, 40, 80)
        value = f"{i}:".encode() + (secrets.token_bytes(100_000) if big else b"x" * 600)
        messages.append(Message(topic, value, key, {"traceparent": f"00-{'1' * 32}-{'2' * 16}-00", "n": str(i)}))
    producer = KafkaProducer(settings)
    await producer.start()
    try:
        await producer.publish(messages, timeout_s=30)
        # The partition a single send() chooses for a key is the one its batch went to.
        sent = await (await producer.send(topic, b"single", key=big_key))
        state = producer._producer._txn_manager
        assert state is not None and state.has_pid(), "the idempotent producer has its producer id"
        expected: dict[int, list[int]] = defaultdict(list)
        for i, m in enumerate(messages):
            expected[partition_for(m.key.encode(), list(range(PARTITIONS)), [])].append(i)
        assert sent.partition == partition_for(big_key.encode(), list(range(PARTITIONS)), [])  # type: ignore[attr-defined]
        expected[sent.partition].append(-1)  # type: ignore[attr-defined]
        for partition in range(PARTITIONS):
            # The sender numbered every batch it took: the next sequence is the partition's count of messages.
            assert state.sequence_number(TopicPartition(topic, partition)) == len(expected[partition])
    finally:
        await producer.stop()

    consumer = AIOKafkaConsumer(topic, bootstrap_servers=settings.kafka_bootstrap_servers,
                                auto_offset_reset="earliest", enable_auto_commit=False, group_id=None,
                                max_partition_fetch_bytes=4 * 1024 * 1024)
    await consumer.start()
    got: dict[int, list[int]] = defaultdict(list)
    try:
        total = len(messages) + 1
        while sum(len(v) for v in got.values()) < total:
            batch = await consumer.getmany(timeout_ms=10_000)
            assert batch, "the broker has every message"
            for tp, records in batch.items():
                for record in records:
                    assert record.key in (m.key.encode() for m in messages)
                    number = -1 if record.value == b"single" else int(record.value.split(b":", 1)[0])
                    if number >= 0:
                        assert dict(record.headers) == {k: v.encode() for k, v in messages[number].headers.items()}
                    got[tp.partition].append(number)
    finally:
        await consumer.stop()
    assert dict(got) == dict(expected), "each message once, on its key's partition, in the order published"
