"""Intake's repositories against the real PostgreSQL: the contract the fakes of tests/unit keep, on the real
tables (bulk writes, locks, the nonce window)."""

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import cast

import pytest
from intake.bootstrap import MIGRATIONS
from intake.config import IntakeSettings
from intake.dependencies import IntakeDeps
from intake.domain.journey import Journey
from intake.domain.settlement import News, Settlement, Step
from intake.domain.submission import SettlementIn, fingerprint
from intake.service_layer.accept import accept_settlements
from intake.service_layer.unit_of_work import IntakeUnitOfWork
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from shared.db import Database
from shared.testing import prepare, statements_sent, unique_prefix
from shared.unit_of_work import unit_of_work

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
async def db() -> AsyncIterator[Database]:
    settings = IntakeSettings(topic_prefix=unique_prefix("intake-repo"), database_name="test_intake_repositories")
    await prepare(settings, MIGRATIONS)
    database = Database(settings)
    yield database
    await database.dispose()


def received(deps: IntakeDeps, sid: str) -> Settlement:
    item = SettlementIn.model_validate({
        "hospital_settlement_id": sid, "hospital_level": 2, "visit_type": "inpatient",
        "admission_date": "2026-02-20", "discharge_date": "2026-03-02",
        "patient": {"national_id": "310110198001011236", "name": "王芳"}, "total_amount": "9000.00",
        "policy_scope_amount": "8000.00", "basic_insurance_paid": "5000.00", "critical_illness_paid": "1000.00"})
    body, person = item.canonical(), item.patient
    return Settlement.receive(uuid.uuid4(), "H001", item, body, fingerprint(body), deps.person_ref(person.national_id),
                              deps.seal(person.national_id, person.name, f"H001/{sid}"))


async def test_a_value_longer_than_its_column_is_refused_not_cut_short(db: Database) -> None:
    # The rows travel as arrays (shared.db.insert_arrays): a cast to varchar(64)[] would cut the reason to 64.
    deps = IntakeDeps.build(IntakeSettings())
    settlement = received(deps, f"R-{uuid.uuid4().hex[:8]}")
    settlement.steps = [Step(Journey.RECEIVED, "x" * 65)]
    with pytest.raises(DBAPIError, match="value too long"):
        async with unit_of_work(db, IntakeUnitOfWork) as uow:
            await uow.settlements.add([settlement])
    async with unit_of_work(db, IntakeUnitOfWork) as uow:
        assert await uow.settlements.lock_known("H001", [settlement.hospital_settlement_id]) == {}, "nothing stored"


async def test_settlements_are_added_found_locked_and_saved_with_their_steps(db: Database) -> None:
    deps = IntakeDeps.build(IntakeSettings())
    one, two, three = (received(deps, f"R-{uuid.uuid4().hex[:8]}") for _ in range(3))
    async with unit_of_work(db, IntakeUnitOfWork) as uow:
        await uow.settlements.add([one, two, three])
    assert one.steps == [] and two.steps == []  # written: nothing pending any more
    async with unit_of_work(db, IntakeUnitOfWork) as uow:
        known = await uow.settlements.lock_known("H001", [one.hospital_settlement_id, "R-none",
                                                          one.hospital_settlement_id])
        assert list(known) == [one.hospital_settlement_id]
        assert (known[one.hospital_settlement_id].id, known[one.hospital_settlement_id].fingerprint) == (
            one.id, one.fingerprint)
        assert await uow.settlements.lock_known("H002", [one.hospital_settlement_id]) == {}
        learned = await uow.settlements.learn(News.fold([
            (one.id, Journey.PARKED, "no_consent", None), (one.id, Journey.ELIGIBLE, "eligible", None),
            (uuid.uuid4(), Journey.ELIGIBLE, "eligible", None), (two.id, Journey.CALCULATED, None, Decimal("12.30"))]))
        assert [n.settlement_id for n in learned] == [one.id, two.id], "a settlement not ours is skipped"
    async with unit_of_work(db, IntakeUnitOfWork) as uow:
        again = await uow.settlements.get("H001", one.hospital_settlement_id)
        assert again is not None and (again.status, again.status_reason, again.eligibility_reason) == (
            Journey.ELIGIBLE, "eligible", "eligible")
        again_two = await uow.settlements.get("H001", two.hospital_settlement_id)
        assert again_two is not None and again_two.assistance == Decimal("12.30")
        assert await uow.settlements.get("H002", one.hospital_settlement_id) is None
        steps = (await uow.session.execute(text(
            "SELECT status, reason FROM journey_step WHERE settlement_id = :id ORDER BY id"), {"id": one.id})).all()
        assert [tuple(s) for s in steps] == [("received", None), ("parked", "no_consent"), ("eligible", "eligible")]
        untouched = await uow.settlements.get("H001", three.hospital_settlement_id)
        assert untouched is not None and untouched.status == Journey.RECEIVED, "a save writes only its own rows"


async def test_a_signature_is_remembered_once_and_forgotten_when_its_window_has_passed(db: Database) -> None:
    now = datetime.now(UTC)
    signature, old = uuid.uuid4().hex, uuid.uuid4().hex
    async with unit_of_work(db, IntakeUnitOfWork) as uow:
        assert await uow.nonces.remember("H001", signature, now + timedelta(seconds=300))
        assert not await uow.nonces.remember("H001", signature, now + timedelta(seconds=300))
        assert await uow.nonces.remember("H002", signature, now + timedelta(seconds=300))  # per hospital
        assert await uow.nonces.remember("H001", old, now - timedelta(seconds=1))
    async with unit_of_work(db, IntakeUnitOfWork) as uow:
        await uow.nonces.forget_expired(now, 300)
        assert not await uow.nonces.remember("H001", signature, now + timedelta(seconds=300))
        assert await uow.nonces.remember("H001", old, now + timedelta(seconds=300)), "expired: forgotten"


async def test_a_request_or_a_batch_costs_the_same_statements_for_one_settlement_or_a_hundred(db: Database) -> None:
    """The hot path stays bulk: one statement per table per request (lock, read, two inserts, the outbox) and
    per consumer batch (update, insert of steps), whatever the number of settlements."""
    deps = IntakeDeps.build(IntakeSettings())

    async def statements(work: Callable[[IntakeUnitOfWork], Awaitable[object]]) -> int:
        with statements_sent(db) as sent:
            async with unit_of_work(db, IntakeUnitOfWork) as uow:
                await work(uow)
        return len(sent)

    def items(n: int) -> list[SettlementIn]:
        return [cast(SettlementIn, received(deps, f"B-{uuid.uuid4().hex[:12]}").content) for _ in range(n)]

    one, hundred = items(1), items(100)
    costs = [await statements(lambda uow, batch=batch: accept_settlements(uow, deps, "H001", batch))
             for batch in (one, hundred)]
    assert costs == [5, 5]
    async with unit_of_work(db, IntakeUnitOfWork) as uow:
        known = await uow.settlements.lock_known("H001", [i.hospital_settlement_id for i in one + hundred])

    async def follow(uow: IntakeUnitOfWork, batch: list[SettlementIn]) -> None:
        learned = await uow.settlements.learn(News.fold(
            (known[i.hospital_settlement_id].id, Journey.ELIGIBLE, "eligible", None) for i in batch))
        assert len(learned) == len(batch)

    # the news and their steps: one statement (a data-modifying WITH)
    assert [await statements(lambda uow, batch=batch: follow(uow, batch)) for batch in (one, hundred)] == [1, 1]


async def test_news_keep_their_steps_in_order_and_news_without_steps_still_update(db: Database) -> None:
    deps = IntakeDeps.build(IntakeSettings())
    mine, bare = (received(deps, f"N-{uuid.uuid4().hex[:12]}") for _ in range(2))
    async with unit_of_work(db, IntakeUnitOfWork) as uow:
        await uow.settlements.add([mine, bare])
    async with unit_of_work(db, IntakeUnitOfWork) as uow:
        news = News.fold([(mine.id, Journey.ELIGIBLE, "eligible", None), (uuid.uuid4(), Journey.PAID, None, None),
                          (mine.id, Journey.CALCULATED, None, Decimal("12.30")),
                          (mine.id, Journey.APPROVED, None, None)])
        assert [n.settlement_id for n in await uow.settlements.learn(news)] == [mine.id]  # not ours: dropped
        assert [n.settlement_id for n in await uow.settlements.learn([News(bare.id, Journey.PARKED, "no_consent")])
                ] == [bare.id]
    async with unit_of_work(db, IntakeUnitOfWork) as uow:
        steps = (await uow.session.execute(text(
            "SELECT settlement_id, status FROM journey_step WHERE settlement_id = ANY(:ids) ORDER BY id"),
            {"ids": [mine.id, bare.id]})).all()
        states = dict((await uow.session.execute(text(
            "SELECT id, status FROM settlement WHERE id = ANY(:ids)"), {"ids": [mine.id, bare.id]})).all())
    assert [s for i, s in steps if i == mine.id] == ["received", "eligible", "calculated", "approved"]
    assert [s for i, s in steps if i == bare.id] == ["received"]  # news without steps writes none
    assert states == {mine.id: "approved", bare.id: "parked"}


async def test_the_status_view_rewrites_a_settlement_in_its_own_page(db: Database) -> None:
    """Migration 0005: no index holds a column the status view writes, and a page keeps room for the new
    versions of its settlements, so each status update is HOT (no new index entries, a short WAL record)."""
    deps = IntakeDeps.build(IntakeSettings())
    settlements = [received(deps, f"H-{uuid.uuid4().hex[:12]}") for _ in range(200)]
    async with unit_of_work(db, IntakeUnitOfWork) as uow:
        await uow.settlements.add(settlements)
    counters = text("SELECT pg_stat_get_xact_tuples_updated('settlement'::regclass), "
                    "pg_stat_get_xact_tuples_hot_updated('settlement'::regclass)")  # this session's, not flushed
    async with unit_of_work(db, IntakeUnitOfWork) as uow:
        before = (await uow.session.execute(counters)).one()
        await uow.settlements.learn(News.fold((s.id, Journey.ELIGIBLE, "eligible", None) for s in settlements))
        after = (await uow.session.execute(counters)).one()
    assert (after[0] - before[0], after[1] - before[1]) == (200, 200), "every status update stays on its page"


async def test_the_update_decides_which_status_stands_as_the_aggregate_does(db: Database) -> None:
    """The status view's UPDATE applies `journey.wins` in SQL: from every stored status, news of every
    downstream status leaves the row as `Settlement.learn_news` leaves the aggregate."""
    deps = IntakeDeps.build(IntakeSettings())
    downstream = [j for j in Journey if j not in (Journey.RECEIVED, Journey.REVERSED)]
    cases = [(start, status, screened) for start in Journey for status in downstream for screened in (False, True)]
    settlements = [received(deps, f"W-{uuid.uuid4().hex[:12]}") for _ in cases]
    async with unit_of_work(db, IntakeUnitOfWork) as uow:
        await uow.settlements.add(settlements)
        await uow.session.execute(text(
            "UPDATE settlement AS s SET status = v.status, status_reason = 'before', eligibility_reason = 'was', "
            "assistance = 5 FROM unnest(CAST(:ids AS UUID[]), CAST(:statuses AS TEXT[])) AS v(id, status) "
            "WHERE s.id = v.id"), {"ids": [s.id for s in settlements], "statuses": [c[0].value for c in cases]})
    expected, news = [], []
    for settlement, (start, status, screened) in zip(settlements, cases, strict=True):
        one = News(settlement.id, status, f"why-{status.value}", screened, "now" if screened else None,
                   Decimal("7.25") if status is Journey.CALCULATED else None, [Step(status, f"why-{status.value}")])
        aggregate = Settlement(settlement.id, "H001", settlement.hospital_settlement_id, "ref", start, "before", "was",
                               Decimal("5.00"))
        aggregate.learn_news(one)
        expected.append((aggregate.status.value, aggregate.status_reason, aggregate.eligibility_reason,
                         aggregate.assistance))
        news.append(one)
    async with unit_of_work(db, IntakeUnitOfWork) as uow:
        assert len(await uow.settlements.learn(news)) == len(cases)
        rows = {row.id: (row.status, row.status_reason, row.eligibility_reason, row.assistance)
                for row in (await uow.session.execute(text(
                    "SELECT id, status, status_reason, eligibility_reason, assistance FROM settlement "
                    "WHERE id = ANY(:ids)"), {"ids": [s.id for s in settlements]})).all()}
    assert [rows[s.id] for s in settlements] == expected
    assert {e[0] for e in expected} >= {"reversed", "paid", "parked"}, "kept, replaced and moved forward"
