"""Kafka clients with the safe settings set on purpose (aiokafka's defaults are acks=1 and auto-commit)."""

import asyncio
import contextlib
import logging
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaConnectionError, KafkaError, MessageSizeTooLargeError, TopicAlreadyExistsError

from shared.contracts.topics import all_topics
from shared.messaging.partitioner import partition_for
from shared.retry import until_up
from shared.settings import ServiceSettings

log = logging.getLogger(__name__)


BATCHED_FROM = 32
"""From this many messages `publish` builds a batch per partition itself (ADR 0049); fewer go through `send()`.
A batch costs a fixed 40-65 us (a builder, a queueing and a shielded future per partition it reaches, likely one
more turn of the event loop for the answer) and saves about 6 us a message: 1-10 messages cost more batched,
20 about the same, 60 and more less."""


@dataclass(frozen=True)
class Message:
    """One message to publish: physical topic, bytes, key (person_ref) and headers (trace context)."""

    topic: str
    value: bytes
    key: str
    headers: Mapping[str, str] = field(default_factory=dict)


class KafkaProducer:
    """An idempotent producer with acks=all: a retried send is written once and in order per partition."""

    def __init__(self, settings: ServiceSettings) -> None:
        self._settings = settings
        self._partitioner = partition_for
        self._producer = self._create()

    def _create(self) -> AIOKafkaProducer:
        return AIOKafkaProducer(
            bootstrap_servers=self._settings.kafka_bootstrap_servers,
            client_id=f"{self._settings.service_name}-producer",
            enable_idempotence=True,
            acks="all",
            linger_ms=self._settings.producer_linger_ms,
            max_batch_size=256 * 1024,
            request_timeout_ms=30000,
            partitioner=self._partitioner,  # Kafka's murmur2, word by word (shared/messaging/partitioner.py)
        )

    async def start(self) -> None:
        await self._producer.start()

    async def stop(self) -> None:
        await self._producer.stop()

    async def send(
        self, topic: str, value: bytes, *, key: str, headers: Mapping[str, str] | None = None
    ) -> "asyncio.Future[object]":
        """Queue one message; returns a future that resolves when the broker has it (acks=all)."""
        delivered: asyncio.Future[object] = await self._producer.send(
            topic,
            value=value,
            key=key.encode(),
            headers=[(k, v.encode()) for k, v in (headers or {}).items()],
        )
        return delivered

    async def send_and_wait(
        self, topic: str, value: bytes, *, key: str, headers: Mapping[str, str] | None = None
    ) -> None:
        await (await self.send(topic, value, key=key, headers=headers))

    async def publish(self, messages: Sequence[Message], timeout_s: float) -> None:
        """Send the messages and wait until the broker has every one; TimeoutError after `timeout_s`.

        On a timeout the client is renewed first: after a broker restart, aiokafka's idempotent producer can be
        left retrying a batch the broker refuses for ever (OutOfOrderSequence), and only a new producer id gets
        out of it. The caller sends the messages again (the outbox keeps them; consumers dedupe by event_id).
        """

        async def confirmed() -> None:
            if len(messages) >= BATCHED_FROM:
                await asyncio.gather(*await self._send_batches(messages))
            else:
                await asyncio.gather(*[await self.send(m.topic, m.value, key=m.key, headers=m.headers)
                                       for m in messages])

        try:
            await asyncio.wait_for(confirmed(), timeout_s)
        except TimeoutError:
            log.warning("the broker confirmed no batch of %d messages in %.0fs; renewing the producer",
                        len(messages), timeout_s)
            await self.renew()
            raise

    async def _send_batches(self, messages: Sequence[Message]) -> "list[asyncio.Future[object]]":
        """Queue the messages as one record batch per partition (in their order); the futures of the batches.

        `send()` builds the same batches, but a message at a time, with a future, a metadata check and a size
        estimate each: 20.6 -> 10.9 us of CPU a message (median, send to acknowledgement) for 1,000 messages,
        19.1 -> 15.4 for 60 (ADR 0049). The batches take the same road to the broker as `send()`'s: the
        accumulator's queue per partition, where the sender gives each its producer id, epoch and sequence
        numbers when it takes it, one request in flight per partition (idempotence); a batch that fills up is
        queued before the next one of its partition is begun, so a partition's messages keep their order. The
        partition is the one `send()` would choose: the configured partitioner over the topic's partitions."""
        producer = self._producer
        partitioner = self._partitioner
        partitions: dict[str, list[int]] = {}
        builders: dict[tuple[str, int], Any] = {}
        delivered: list[asyncio.Future[object]] = []
        for m in messages:
            topic = m.topic
            everyone = partitions.get(topic)
            if everyone is None:
                everyone = partitions[topic] = sorted(await producer.partitions_for(topic))
            key = m.key.encode()
            headers = [(k, v.encode()) for k, v in m.headers.items()] if m.headers else []
            partition = partitioner(key, everyone, everyone)
            builder = builders.get((topic, partition))
            if builder is None:
                builder = builders[topic, partition] = producer.create_batch()
            if builder.append(timestamp=None, key=key, value=m.value, headers=headers) is None:  # full
                delivered.append(await producer.send_batch(builder, topic, partition=partition))
                builder = builders[topic, partition] = producer.create_batch()
                if builder.append(timestamp=None, key=key, value=m.value, headers=headers) is None:
                    raise MessageSizeTooLargeError(f"a message of {len(m.value)} bytes does not fit in a batch")
        for (topic, partition), builder in builders.items():
            delivered.append(await producer.send_batch(builder, topic, partition=partition))
        return delivered

    async def renew(self) -> None:
        """Replace the client by a new one (new producer id, sequences from zero); the old one is abandoned.

        Raises while the broker is away, keeping the old client: the caller tries again later.
        """
        fresh = self._create()
        await fresh.start()
        old, self._producer = self._producer, fresh
        with contextlib.suppress(Exception):  # it may hang flushing what it could never deliver
            await asyncio.wait_for(old.stop(), 5)


def group_instance_id(settings: ServiceSettings) -> str:
    """This instance's static membership id: the same after a restart, unique among the group's live instances.

    Host and HTTP port name an instance: two live instances cannot share both, and a restarted one (the same
    container in its pod, the same process slot on a machine) comes back with them (docs/decisions/0018).
    """
    return settings.kafka_group_instance_id or f"{settings.service_name}-{socket.gethostname()}-{settings.http_port}"


def create_consumer(settings: ServiceSettings, group_id: str, topics: list[str]) -> AIOKafkaConsumer:
    """A consumer that never commits on its own: the runner commits after the database commit.

    Static group membership: a restarted instance takes its partitions back at once, without a rebalance; an
    instance that does not come back loses them to the others after the session timeout (10 s).
    """
    return AIOKafkaConsumer(
        *[settings.topic(t) for t in topics],
        bootstrap_servers=settings.kafka_bootstrap_servers,
        group_id=f"{settings.topic_prefix}{group_id}",
        group_instance_id=group_instance_id(settings),
        client_id=f"{settings.service_name}-consumer",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        isolation_level="read_committed",
        max_poll_records=settings.consumer_batch_max,
        fetch_max_wait_ms=settings.consumer_fetch_max_wait_ms,
        session_timeout_ms=settings.kafka_session_timeout_ms,
        heartbeat_interval_ms=max(1000, settings.kafka_session_timeout_ms // 3),
        max_poll_interval_ms=300000,
    )


async def ensure_topics(settings: ServiceSettings, partitions: int = 6, attempts: int = 60) -> list[str]:
    """Create every contract topic and its DLQ if missing; waits for the broker to answer."""
    names = [settings.topic(t) for t in all_topics()]
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
    await until_up(admin.start, "broker connection", retry_on=KafkaConnectionError, attempts=attempts)
    try:
        existing = set(await admin.list_topics())
        missing = [NewTopic(n, num_partitions=partitions, replication_factor=1) for n in names if n not in existing]
        if missing:
            try:
                await admin.create_topics(missing)
            except TopicAlreadyExistsError:
                pass
        return [t.name for t in missing]
    finally:
        await admin.close()


async def wait_for_group_coordinator(settings: ServiceSettings, attempts: int = 60) -> None:
    """A new broker creates its offsets topic on the first group lookup; wait until groups can be used."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
    await admin.start()
    try:
        await until_up(lambda: admin.find_coordinator(f"{settings.topic_prefix}warm-up"), "group coordinator lookup",
                       retry_on=KafkaError, attempts=attempts, wait_s=0.5)
    finally:
        await admin.close()
