"""Scale-out on one box: two instances of every consumer service in the same consumer groups.

A few thousand settlements flow from the hospital to the bank while one instance of each service is
SIGKILLed mid-flow. Then: nothing lost, nothing applied twice (read from the services' own databases and the
bank's books), every partition owned by the survivors, and a killed instance, started again, flowing again
(its timings printed; docs/decisions/0018-consumer-group-membership.md).
"""

import asyncio
import os
import random
import time
from collections.abc import AsyncIterator
from datetime import date
from decimal import Decimal
from typing import Any

import asyncpg
import httpx
import pytest
from simulators.hospital.feed import settlement
from simulators.scenario import (
    Endpoints,
    Staff,
    all_pages,
    approve_everything,
    import_registry,
    residents,
    sign_consents,
    wait_for,
)

from shared.settings import ServiceSettings
from shared.testing import ServiceProcess, group_assignments, stack_available, start_services, unique_prefix
from tests.e2e.helpers import push_all

pytestmark = pytest.mark.e2e
SERVICES = ("intake", "eligibility", "calculation", "approval", "disbursement")
GROUPS = {"intake": ["intake-journey"], "eligibility": ["eligibility", "eligibility-policies"],
          "calculation": ["calculation"], "approval": ["approval"], "disbursement": ["disbursement"]}
SETTLEMENTS = int(os.environ.get("SCALE_OUT_SETTLEMENTS", "2000"))  # 262 s on the 2 cores beside two other test runs
SCREENED = {"parked", "calculated", "nothing_to_pay"}
DB = "scale"


@pytest.fixture(scope="module")
async def scaled() -> AsyncIterator[tuple[Endpoints, dict[str, list[ServiceProcess]]]]:
    if not await stack_available(ServiceSettings()):
        pytest.fail("PostgreSQL is not reachable: run `make up` (make test does it for you)")
    prefix = unique_prefix("scale")
    urls, processes = await start_services(
        prefix, DB, instances=2,
        per_service={"bank": {"BANK_SIM_SETTLE_DELAY_MS": "30"},
                     "disbursement": {"POLL_AFTER_S": "1", "RESEND_BACKOFF_S": "0.5"}})
    by_service = {name: [p for p in processes if p.module == name] for name in SERVICES}
    try:
        yield Endpoints(**urls, topic_prefix=prefix), by_service
    finally:
        for process in processes:
            process.stop()


async def consumed(process: ServiceProcess) -> float:
    """Events this process applied since it started (its Prometheus counter)."""
    async with httpx.AsyncClient() as client:
        text = (await client.get(f"{process.url}/metrics", timeout=5)).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("medassist_events_consumed_total{"))


async def settled_groups(prefix: str, expect_members: int) -> dict[str, dict[str, set[tuple[str, int]]]]:
    """Each service's group, once it is stable with `expect_members` members that own every partition."""
    out = {}
    for group in (g for name in SERVICES for g in GROUPS[name]):
        state, members = await group_assignments(ServiceSettings().kafka_bootstrap_servers, f"{prefix}{group}")
        if state != "Stable" or len(members) != expect_members or not all(members.values()):
            raise LookupError(f"{group}: {state}, {len(members)} members")
        out[group] = members
    return out


async def wait_groups(prefix: str, members: int, timeout: float) -> tuple[float, dict[str, Any]]:
    started, found = time.monotonic(), {}

    async def check() -> bool:
        nonlocal found
        try:
            found = await settled_groups(prefix, members)
            return True
        except LookupError:
            return False

    await wait_for(check, timeout, f"every group stable with {members} members", every=0.25)
    return time.monotonic() - started, found


async def rows(database: str, sql: str) -> list[asyncpg.Record]:
    s = ServiceSettings(database_name=database)
    conn = await asyncpg.connect(host=s.pg_host, port=s.pg_port, user=s.pg_user,
                                 password=s.pg_password.get_secret_value(), database=database)
    try:
        return await conn.fetch(sql)
    finally:
        await conn.close()


async def restart_and_time_first_event(processes: list[ServiceProcess], feed: Any) -> dict[str, tuple[float, float]]:
    """Start the processes; returns per service (s from start to ready, s from ready to its first event)."""
    started = time.monotonic()
    for p in processes:
        p.start()
    ready: dict[str, float] = {}
    for p in processes:
        await p.wait_ready(120)
        ready[p.module] = time.monotonic()
    feeding = asyncio.create_task(feed())
    first: dict[str, float] = {}
    try:
        async def all_flowing() -> bool:
            for p in processes:
                if p.module not in first and await consumed(p) > 0:
                    first[p.module] = time.monotonic()
            return len(first) == len(processes)

        await wait_for(all_flowing, 180, "every restarted instance to apply an event", every=0.1)
    finally:
        await feeding
    return {m: (ready[m] - started, first[m] - ready[m]) for m in ready}


async def test_two_instances_of_every_service_one_killed_mid_flow(
        scaled: tuple[Endpoints, dict[str, list[ServiceProcess]]]) -> None:
    endpoints, instances = scaled
    clock = {"t": time.monotonic()}

    def phase(what: str) -> None:
        now = time.monotonic()
        print(f"  [{now - clock['t']:6.1f}s] {what}")
        clock["t"] = now
    staff = Staff(endpoints)
    rng = random.Random(1515)
    people = residents(rng, 300)
    officer = staff.client(endpoints.eligibility, "registry_officer")
    await import_registry(officer, people)
    await sign_consents(officer, people)
    hospital = staff.hospital("H001")
    feed = [settlement(rng, rng.choice(people).patient, f"SO-{i:05d}", discharge=date(2026, 1 + i % 11, 1 + i % 28))
            for i in range(SETTLEMENTS + 200)]
    ids: dict[str, str] = {}

    ops = staff.client(endpoints.approval, "ops")

    async def screened(n: int) -> bool:
        """n settlements screened, and approval holds a case for each one with something to pay (it consumes
        assistance.calculated beside intake and may be behind it: the clerks approve what their queue holds)."""
        counts = await hospital.summary()
        if sum(counts.get(s, 0) for s in SCREENED | {"approved", "paid"}) < n:
            return False
        listed = (await ops.get("/v1/cases", params={"limit": 1})).json()
        return int(listed["total"]) >= sum(counts.get(s, 0) for s in ("calculated", "approved", "paid"))

    # First half: screened, approved, and paying when the kill comes; the second half is being pushed.
    ids |= await push_all(hospital, feed[:SETTLEMENTS // 2])
    await wait_for(lambda: screened(SETTLEMENTS // 2), 300, "the first half screened", every=1)
    phase(f"{SETTLEMENTS // 2} pushed and screened")
    await approve_everything(staff)
    phase("first half approved")
    pushing = asyncio.create_task(push_all(hospital, feed[SETTLEMENTS // 2:SETTLEMENTS]))
    await asyncio.sleep(1.0)
    victims = [instances[name][1] for name in SERVICES]
    before = {p.module: await consumed(p) for p in victims}
    for p in victims:
        p.kill()
    killed_at = time.monotonic()
    print(f"\nSIGKILL mid-flow, events each victim had applied: {before}")
    assert all(n > 0 for n in before.values()), "every victim was consuming when it was killed"
    _, groups = await wait_groups(endpoints.topic_prefix, 1, 120)
    partitions = int(os.environ.get("KAFKA_PARTITIONS", "6"))
    owned = {name: next(iter(members.values())) for name, members in groups.items()}
    print(f"{time.monotonic() - killed_at:.1f}s after the kills every group has one member, owning "
          f"{ {name: len(o) for name, o in owned.items()} } partitions")
    for name, partitions_owned in owned.items():
        topics = {t for t, _ in partitions_owned}
        assert len(partitions_owned) == partitions * len(topics), f"{name}: the survivor owns every partition"
    phase("kill and rebalance")
    ids |= await pushing

    await wait_for(lambda: screened(SETTLEMENTS), 300, "every settlement screened", every=1)
    phase("second half screened")
    await approve_everything(staff)
    phase("second half approved")

    async def paid_all() -> bool:
        counts = await hospital.summary()
        return counts.get("approved", 0) == 0

    await wait_for(paid_all, 300, "every approved case paid", every=1)
    phase("every approved case paid")

    # Nothing lost: every settlement reached a final status; every approved case was paid, the same amount.
    counts = await hospital.summary()
    assert sum(counts.values()) == SETTLEMENTS and set(counts) <= SCREENED | {"paid"}, counts
    cases = await all_pages(ops, "/v1/cases")
    approved = [c for c in cases if c["state"] == "approved"]
    assert len(approved) == counts["paid"] == len(cases)
    bank = (await staff.client(endpoints.bank, "ops").get("/admin/stats")).json()
    approved_amount = sum((Decimal(c["amount"]) for c in approved), Decimal(0))
    assert Decimal(bank["settled_amount"]) == approved_amount

    # Nothing applied twice.
    assert bank["max_settled_per_remittance"] == 1 and bank["transfers"] == len(approved)
    steps = await rows(f"{DB}_intake", "SELECT settlement_id, status, count(*) n FROM journey_step "
                                       "GROUP BY 1, 2 HAVING count(*) > 1")
    assert not steps, f"journey steps recorded twice: {steps[:5]}"
    ledger = await rows(f"{DB}_calculation", """
        SELECT l.person_ref, l.year, l.committed, coalesce(sum(c.assistance), 0) AS calculated
        FROM ledger l LEFT JOIN calculation c ON c.person_ref = l.person_ref AND c.year = l.year
        GROUP BY 1, 2, 3 HAVING l.committed <> coalesce(sum(c.assistance), 0)""")
    assert not ledger, f"annual ledgers that do not match their calculations: {ledger[:5]}"
    [[payments, paid_cases]] = await rows(f"{DB}_disbursement", "SELECT count(*), count(DISTINCT case_id) FROM payment")
    assert payments == paid_cases == len(approved)
    [[n_cases, n_settlements]] = await rows(f"{DB}_approval",
                                            'SELECT count(*), count(DISTINCT settlement_id) FROM "case"')
    assert n_cases == n_settlements == len(cases)
    print(f"settlements={SETTLEMENTS} by status={counts} cases={len(cases)} paid={len(approved)} "
          f"yuan={approved_amount} bank transfers={bank['transfers']} max settled per case=1")

    # The killed instances come back: each applies events again.
    extra = iter(feed[SETTLEMENTS:])

    async def more() -> None:  # traffic on every topic: new settlements, and their approval (case.decided)
        await push_all(hospital, [next(extra) for _ in range(100)])
        total = sum((await hospital.summary()).values())
        await wait_for(lambda: screened(total), 120, "the new settlements screened")
        await approve_everything(staff)

    timings = await restart_and_time_first_event(victims, more)
    print("restarted after their membership expired (start->ready s, ready->first event s):",
          {m: (round(a, 1), round(b, 1)) for m, (a, b) in timings.items()})
    # Printed, not asserted: the first event of a downstream service waits for the feed to reach its topic
    # (disbursement's for an approval), and a slow start on a crowded machine can outlast the session.
    # The group's own figure (restart -> flows, 1.1 s) is measured by bench/membership.py (ADR 0018).
    await wait_groups(endpoints.topic_prefix, 2, 60)
    for p in victims:  # and a crash with an immediate restart: the static member takes its partitions back
        p.kill()
    timings = await restart_and_time_first_event(victims, more)
    print("SIGKILLed and restarted at once (start->ready s, ready->first event s):",
          {m: (round(a, 1), round(b, 1)) for m, (a, b) in timings.items()})
    # Printed, not asserted: the first event of a downstream service waits for the feed to reach its topic
    # (disbursement's for an approval), and a slow start on a crowded machine can outlast the session.
    # The group's own figure (restart -> flows, 1.1 s) is measured by bench/membership.py (ADR 0018).
    await staff.aclose()
