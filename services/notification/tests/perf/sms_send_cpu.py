"""CPU per message handed to the SMS gateway simulator: one request per message (`send`, 16 at a time) against one
request per batch (`send_batch`). Client CPU from time.process_time, the simulator's from /proc/<pid>/stat.

    source deploy/local/env.sh && .venv/bin/python services/notification/tests/perf/sms_send_cpu.py [n] [batch]
"""

import asyncio
import os
import sys
import time
import uuid

from notification.adapters.sms_gateway import Sms, SmsGateway

from shared.testing import ServiceProcess, free_port

TICK = os.sysconf("SC_CLK_TCK")


def cpu_of(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def messages(n: int) -> list[Sms]:
    return [Sms(str(uuid.uuid4()), f"1380013{i % 9000 + 1000:04d}", "【医疗救助】您的医疗救助1,234.56 元已审核通过，"
                "将直接转入您的银行账户。") for i in range(n)]


async def singles(gateway: SmsGateway, batch: list[Sms]) -> None:
    gate = asyncio.Semaphore(16)

    async def one(m: Sms) -> None:
        async with gate:
            await gateway.send(m)

    await asyncio.gather(*(one(m) for m in batch))


async def batches(gateway: SmsGateway, batch: list[Sms], size: int) -> None:
    for i in range(0, len(batch), size):
        answer = await gateway.send_batch(batch[i:i + size])
        assert not answer.unknown and not answer.rejected


async def main(n: int, size: int) -> None:
    port = free_port()
    sim = ServiceProcess("simulators.sms", {"SMS_SIM_PORT": str(port), "SMS_SIM_DELIVER_DELAY_MS": "10"}, port).start()
    try:
        await sim.wait_ready()
        gateway = SmsGateway(sim.url)
        await batches(gateway, messages(200), size)  # warm both paths up
        await singles(gateway, messages(200))
        for round_ in range(3):
            for name in ("single", "batch"):
                batch = messages(n)
                c0, s0, w0 = time.process_time(), cpu_of(sim.pid), time.perf_counter()
                await (singles(gateway, batch) if name == "single" else batches(gateway, batch, size))
                c1, s1, w1 = time.process_time(), cpu_of(sim.pid), time.perf_counter()
                print(f"round {round_} {name:6} client {1e6 * (c1 - c0) / n:7.1f} us/msg  simulator "
                      f"{1e6 * (s1 - s0) / n:7.1f} us/msg  wall {1e3 * (w1 - w0):7.0f} ms", flush=True)
                await asyncio.sleep(0.5)  # the deliveries of this round are done before the next
        await gateway.aclose()
    finally:
        sim.stop()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 2000, int(sys.argv[2]) if len(sys.argv) > 2 else 200))
