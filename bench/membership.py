"""How soon a consumer group flows again after one of two instances is killed and restarted.

python -m bench.membership [--rounds 2]

For each way of joining the group (docs/decisions/0018-consumer-group-membership.md) two member processes
consume one 6-partition topic in one group while a producer writes 50 messages a second to every partition.
One member is stopped (SIGKILL, or SIGTERM) and started again at once. Measured, per round:
  restart->flows  from the restart until the restarted member consumes its first message
  kill->all flow  from the kill until every partition has delivered a message produced after the kill
Runs on the local Kafka (make up) under a fresh topic prefix; prints one table.
"""

import argparse
import asyncio
import json
import os
import signal
import statistics
import sys
import time
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from shared.testing import ROOT, unique_prefix

BOOTSTRAP = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:19092")
PARTITIONS = 6
MODES: dict[str, dict[str, Any]] = {
    "dynamic, session 30 s (before)": {"session_timeout_ms": 30000, "heartbeat_interval_ms": 3000},
    "dynamic, session 30 s, SIGTERM": {"session_timeout_ms": 30000, "heartbeat_interval_ms": 3000,
                                       "signal": "TERM"},
    "dynamic, session 6 s": {"session_timeout_ms": 6000, "heartbeat_interval_ms": 2000},
    "static, session 30 s": {"session_timeout_ms": 30000, "heartbeat_interval_ms": 3000, "static": True},
    "static, session 10 s": {"session_timeout_ms": 10000, "heartbeat_interval_ms": 3000, "static": True},
}


async def member(topic: str, group: str, instance: str, session_ms: int, heartbeat_ms: int, static: bool) -> None:
    """One group member: prints a JSON line per message (partition, produce time, consume time)."""
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=BOOTSTRAP, group_id=group, enable_auto_commit=True, auto_commit_interval_ms=200,
        auto_offset_reset="latest", session_timeout_ms=session_ms, heartbeat_interval_ms=heartbeat_ms,
        group_instance_id=instance if static else None, fetch_max_wait_ms=50)
    stopping = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stopping.set)
    await consumer.start()
    try:
        while not stopping.is_set():
            for tp, records in (await consumer.getmany(timeout_ms=100)).items():
                for r in records:
                    print(json.dumps({"p": tp.partition, "sent": r.timestamp / 1000, "at": time.time()}), flush=True)
    finally:
        await consumer.stop()


class Member:
    def __init__(self, topic: str, group: str, instance: str, mode: dict[str, Any]) -> None:
        self.args = [sys.executable, "-m", "bench.membership", "--member", topic, group, instance,
                     str(mode["session_timeout_ms"]), str(mode["heartbeat_interval_ms"]), str(bool(mode.get("static")))]
        self.seen: list[dict[str, float]] = []
        self.proc: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.seen = []
        self.proc = await asyncio.create_subprocess_exec(*self.args, cwd=ROOT, stdout=asyncio.subprocess.PIPE)
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.proc and self.proc.stdout
        async for line in self.proc.stdout:
            self.seen.append(json.loads(line))

    async def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc and self.proc.returncode is None:
            self.proc.send_signal(sig)
            await self.proc.wait()
        if self._reader:
            await self._reader


async def produce(topic: str, stop: asyncio.Event) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=BOOTSTRAP, linger_ms=5)
    await producer.start()
    try:
        while not stop.is_set():
            for p in range(PARTITIONS):
                await producer.send(topic, b"x", partition=p)
            await asyncio.sleep(0.02)
    finally:
        await producer.stop()


async def until(check: Any, timeout: float) -> float:
    start = time.monotonic()
    while not check():
        if time.monotonic() - start > timeout:
            raise TimeoutError
        await asyncio.sleep(0.05)
    return time.monotonic() - start


async def one_round(name: str, mode: dict[str, Any], prefix: str, n: int) -> tuple[float, float]:
    topic, group = f"{prefix}membership-{n}", f"{prefix}membership-group-{n}"
    admin = AIOKafkaAdminClient(bootstrap_servers=BOOTSTRAP)
    await admin.start()
    await admin.create_topics([NewTopic(topic, PARTITIONS, 1)])
    stop = asyncio.Event()
    producing = asyncio.create_task(produce(topic, stop))
    a, b = Member(topic, group, "member-a", mode), Member(topic, group, "member-b", mode)
    try:
        await a.start()
        await b.start()
        await until(lambda: {s["p"] for s in a.seen} and {s["p"] for s in b.seen}
                    and {s["p"] for s in a.seen[-30:]} | {s["p"] for s in b.seen[-30:]} == set(range(PARTITIONS)), 120)
        await asyncio.sleep(2)
        killed_at = time.time()
        await a.stop(signal.SIGKILL if mode.get("signal") != "TERM" else signal.SIGTERM)
        restarted_at = time.time()
        await a.start()

        def flowing(p: int) -> bool:
            return any(s["p"] == p and s["sent"] > killed_at for s in a.seen + b.seen)

        await until(lambda: all(flowing(p) for p in range(PARTITIONS)) and a.seen, 120)
        first_after = {p: min(s["at"] for s in a.seen + b.seen if s["p"] == p and s["sent"] > killed_at)
                       for p in range(PARTITIONS)}
        return a.seen[0]["at"] - restarted_at, max(first_after.values()) - killed_at
    finally:
        stop.set()
        await producing
        await a.stop()
        await b.stop()
        await admin.delete_topics([topic])
        await admin.close()


async def main(rounds: int) -> None:
    prefix = unique_prefix("bench")
    print(f"{'membership':<34} {'restart->flows (s)':>20} {'kill->all flow (s)':>20}")
    n = 0
    for name, mode in MODES.items():
        flows, alls = [], []
        for _ in range(rounds):
            n += 1
            f, a = await one_round(name, mode, prefix, n)
            flows.append(f)
            alls.append(a)
        print(f"{name:<34} {statistics.median(flows):>12.1f} (max {max(flows):4.1f}) "
              f"{statistics.median(alls):>12.1f} (max {max(alls):4.1f})", flush=True)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--member":
        topic, group, instance, session, heartbeat, static = sys.argv[2:8]
        asyncio.run(member(topic, group, instance, int(session), int(heartbeat), static == "True"))
    else:
        parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
        parser.add_argument("--rounds", type=int, default=2)
        asyncio.run(main(parser.parse_args().rounds))
