"""shared.db.lock_keys against the real PostgreSQL: bounded locks, and overlapping writers take turns."""

import asyncio

import pytest
from sqlalchemy import text

from shared.db import LOCK_BUCKETS, LOCK_PERSON, Database, lock_keys

pytestmark = pytest.mark.integration

_HELD = text("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()")
_WAITING = text("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted AND pid = :pid")


async def test_a_transaction_holds_at_most_one_lock_per_bucket_however_many_keys(db: Database) -> None:
    async with db.transaction() as session:
        await lock_keys(session, LOCK_PERSON, (f"person-{i}" for i in range(5_000)))
        held = (await session.execute(_HELD)).scalar_one()
    assert 0 < held <= LOCK_BUCKETS, "5,000 keys took one lock each: a few imports at once exhaust the lock table"


async def test_a_writer_of_an_overlapping_key_waits_for_the_first_to_commit(db: Database) -> None:
    pids: asyncio.Queue[int] = asyncio.Queue()

    async def second() -> None:
        async with db.transaction() as session:
            pids.put_nowait((await session.execute(text("SELECT pg_backend_pid()"))).scalar_one())
            await lock_keys(session, LOCK_PERSON, ["p-9", "p-2"])

    async def waiting(pid: int) -> bool:
        async with db.transaction() as session:
            return bool((await session.execute(_WAITING, {"pid": pid})).scalar_one())

    async with db.transaction() as first:
        await lock_keys(first, LOCK_PERSON, ["p-1", "p-2"])
        task = asyncio.create_task(second())
        pid = await asyncio.wait_for(pids.get(), timeout=30)
        for _ in range(300):  # up to 30 s on a loaded machine
            if await waiting(pid):
                break
            await asyncio.sleep(0.1)
        else:
            pytest.fail("the second writer never waited for the key the first holds")
        assert not task.done()
    await asyncio.wait_for(task, timeout=30)  # the first committed: the second goes on
