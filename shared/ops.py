"""What operations staff look at first: consumer lag per topic and group, and dead letters per topic."""

from collections.abc import Mapping, Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from shared.contracts.topics import dlq
from shared.problems import ProblemError
from shared.settings import ServiceSettings


async def _end_offsets(settings: ServiceSettings, topics: Sequence[str]) -> dict[TopicPartition, int]:
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap_servers, enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = [TopicPartition(t, p) for t in topics for p in (consumer.partitions_for_topic(t) or set())]
        if not partitions:
            await consumer.topics()  # loads metadata
            partitions = [TopicPartition(t, p) for t in topics for p in (consumer.partitions_for_topic(t) or set())]
        return await consumer.end_offsets(partitions) if partitions else {}
    finally:
        await consumer.stop()


async def kafka_overview(settings: ServiceSettings, groups: Mapping[str, Sequence[str]]) -> dict[str, Any]:
    """Lag per (group, topic) and dead letters per topic, for logical group ids and topics.

    While the broker does not answer this is a 503 problem (as for /readyz), not an internal error.
    """
    try:
        return await _overview(settings, groups)
    except KafkaError as exc:
        raise ProblemError(503, "broker_unavailable", "the broker does not answer; try again shortly") from exc


async def _overview(settings: ServiceSettings, groups: Mapping[str, Sequence[str]]) -> dict[str, Any]:
    topics = sorted({t for ts in groups.values() for t in ts})
    physical = [settings.topic(t) for t in topics] + [settings.topic(dlq(t)) for t in topics]
    ends = await _end_offsets(settings, physical)
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
    await admin.start()
    lag: list[dict[str, Any]] = []
    try:
        for group, group_topics in groups.items():
            committed = await admin.list_consumer_group_offsets(f"{settings.topic_prefix}{group}")
            for topic in group_topics:
                behind = 0
                for tp, end in ends.items():
                    if tp.topic == settings.topic(topic):
                        meta = committed.get(tp)
                        behind += end - (meta.offset if meta is not None and meta.offset >= 0 else 0)
                lag.append({"group": group, "topic": topic, "lag": behind})
    finally:
        await admin.close()
    dead = {t: sum(end for tp, end in ends.items() if tp.topic == settings.topic(dlq(t))) for t in topics}
    return {"lag": lag, "dead_letters": dead}
