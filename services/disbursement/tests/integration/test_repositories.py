"""Each repository against the real PostgreSQL (migrated to head): what the service layer relies on, including
what must hold when two workers run at once."""

import hashlib
import secrets
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from disbursement.adapters.repositories import PayeeAccount
from disbursement.bootstrap import MIGRATIONS
from disbursement.config import DisbursementSettings
from disbursement.domain.payment import AttemptStatus, BankWord, Payment, PaymentStatus
from disbursement.service_layer.unit_of_work import Units, units_of
from sqlalchemy import event, text

from shared.db import Database
from shared.testing import migrated_database, statements_sent

pytestmark = pytest.mark.integration
CHECKOUT = hashlib.sha256(str(Path(__file__).resolve()).encode()).hexdigest()[:8]
P, A = PaymentStatus, AttemptStatus


@pytest.fixture(scope="module")
async def db() -> AsyncIterator[Database]:
    settings = DisbursementSettings(database_name=f"test_disbursement_repositories_{CHECKOUT}")
    async with migrated_database(settings, MIGRATIONS) as database:
        yield database


@pytest.fixture(scope="module")
def units(db: Database) -> Units:
    return units_of(db)


def district() -> str:
    return f"99{secrets.randbelow(10_000):04d}"


def new_payment(where: str = "990600", amount: str = "88.80", on: date = date(2026, 3, 2),
                has_account: bool = True, case_id: uuid.UUID | None = None) -> Payment:
    return Payment.open(case_id=case_id or uuid.uuid4(), calculation_id=uuid.uuid4(), settlement_id=uuid.uuid4(),
                        person_ref=secrets.token_hex(32), district_code=where, amount=Decimal(amount),
                        decided_at=datetime.combine(on, datetime.min.time(), UTC) + timedelta(hours=2),
                        has_account=has_account, now=datetime.now(UTC))


async def test_payments_one_per_case_with_the_first_key_stored(units: Units) -> None:
    first = new_payment()
    again = new_payment(case_id=first.case_id)
    async with units() as uow:
        assert [p.id for p in await uow.payments.add([first])] == [first.id]
    async with units() as uow:
        assert await uow.payments.add([again]) == [], "a case keeps the payment it has"
        loaded = (await uow.payments.of_cases({first.case_id}))[first.case_id]
    assert (loaded.id, loaded.status, loaded.amount, loaded.approved_on) == (
        first.id, P.PENDING, Decimal("88.80"), date(2026, 3, 2))
    assert {k: a.status for k, a in loaded.attempts.items()} == {first.idempotency_key: A.OPEN}


async def test_payments_save_what_the_aggregate_heard(units: Units) -> None:
    payment = new_payment()
    async with units() as uow:
        await uow.payments.add([payment])
        await uow.payments.hand_over({payment.idempotency_key: ("f" * 64, None)}, datetime.now(UTC))
    now = datetime.now(UTC)
    async with units() as uow:
        answered = await uow.payments.answered({payment.idempotency_key, "not-ours-1"})
        assert set(answered) == {payment.idempotency_key}
        loaded = answered[payment.idempotency_key]
        assert loaded.attempts[payment.idempotency_key].status is A.UNKNOWN
        assert loaded.hear(payment.idempotency_key, BankWord.SETTLED, "REF-1", None, now=now,
                           quiet_before=now - timedelta(seconds=60))
        await uow.payments.save([loaded], now)
    async with units() as uow:
        stored = (await uow.payments.answered({payment.idempotency_key}))[payment.idempotency_key]
        assert await uow.payments.unsettled({payment.idempotency_key}) == set()
        by_key = await uow.payments.by_keys({payment.idempotency_key})
    assert (stored.status, stored.bank_reference, stored.settled_keys) == (P.SETTLED, "REF-1",
                                                                           {payment.idempotency_key})
    attempt = stored.attempts[payment.idempotency_key]
    assert (attempt.status, attempt.bank_reference, attempt.settled_at is not None) == (A.SETTLED, "REF-1", True)
    assert by_key[payment.idempotency_key].attempts[payment.idempotency_key].account_fingerprint == "f" * 64


async def test_a_reissue_is_saved_as_a_new_attempt_and_its_earlier_keys_known(units: Units) -> None:
    payment = new_payment()
    async with units() as uow:
        await uow.payments.add([payment])
        await uow.payees.store([PayeeAccount(payment.person_ref, "c", 1, "****1")], datetime.now(UTC))
    async with units() as uow:  # the bank refused attempt 1 (as the resolver would record it)
        claimed = {d.payment.id: d for d in await uow.payments.claim_due(10_000, datetime.now(UTC))}[payment.id]
        assert (claimed.payment.account_version, claimed.ciphertext) == (1, "c"), "claimed with its account"
        await uow.payments.hand_over({payment.idempotency_key: ("f" * 64, claimed.payment.account_version)},
                                     datetime.now(UTC))
        loaded = (await uow.payments.answered({payment.idempotency_key}))[payment.idempotency_key]
        loaded.hear(payment.idempotency_key, BankWord.FAILED, None, "account_closed", now=datetime.now(UTC),
                    quiet_before=datetime.now(UTC))
        await uow.payments.save([loaded], datetime.now(UTC))
    async with units() as uow:  # the attempt remembers the account version it went out with
        (stored,) = (await uow.payments.of_cases({payment.case_id})).values()
        assert stored.attempts[payment.idempotency_key].account_version == 1
    async with units() as uow:
        (waiting,) = await uow.payments.waiting_for_an_account({payment.person_ref})
        assert waiting.status is P.FAILED and waiting.failure_reason == "account_closed"
        assert waiting.account_arrived(2, now=datetime.now(UTC)) is not None
        await uow.payments.save([waiting], datetime.now(UTC))
    async with units() as uow:
        (again,) = (await uow.payments.of_cases({payment.case_id})).values()
        earlier = await uow.payments.earlier_keys([again])
    assert (again.status, again.attempt, again.idempotency_key) == (P.PENDING, 2, f"{payment.id}-2")
    assert again.attempts[again.idempotency_key].status is A.OPEN
    assert earlier == {payment.id: [payment.idempotency_key]}


async def test_two_senders_never_claim_the_same_payment(units: Units) -> None:
    payments = [new_payment() for _ in range(6)]
    async with units() as uow:
        await uow.payments.add(payments)
    mine = {p.id for p in payments}
    async with units() as one, units() as two:
        first = await one.payments.claim_due(10_000, datetime.now(UTC))
        second = await two.payments.claim_due(10_000, datetime.now(UTC))  # skips what `one` holds locked
    claimed = [d.payment.id for d in first + second if d.payment.id in mine]
    assert sorted(claimed) == sorted(mine) and all(d.payment.status is P.SENDING for d in first + second)
    async with units() as uow:
        assert all(p.status is P.SENDING for p in (await uow.payments.of_cases({p.case_id for p in payments})
                                                   ).values())


@pytest.mark.parametrize("size", [1, 60])
async def test_a_batch_is_claimed_with_its_accounts_and_handed_over_in_one_statement_each(
        db: Database, units: Units, size: int) -> None:
    payments = [new_payment() for _ in range(size)]
    async with units() as uow:
        await uow.payments.add(payments)
        await uow.payees.store([PayeeAccount(p.person_ref, f"c-{i}", i + 1, "****1") for i, p in enumerate(payments)],
                               datetime.now(UTC))
    mine = {p.id for p in payments}
    with statements_sent(db) as sent:
        async with units() as uow:
            claimed = [d for d in await uow.payments.claim_due(10_000, datetime.now(UTC)) if d.payment.id in mine]
            await uow.payments.hand_over({d.payment.idempotency_key: ("f" * 64, d.payment.account_version)
                                          for d in claimed}, datetime.now(UTC))
    assert len(sent) == 2, sent
    by_id = {p.id: i for i, p in enumerate(payments)}
    assert sorted((d.payment.account_version, d.ciphertext) for d in claimed) == sorted(
        (by_id[d.payment.id] + 1, f"c-{by_id[d.payment.id]}") for d in claimed)
    assert len(claimed) == size
    async with units() as uow:
        stored = await uow.payments.by_keys({p.idempotency_key for p in payments})
    assert {k: (p.status, p.account_version, p.attempts[k].status, p.attempts[k].account_version)
            for k, p in stored.items()} == {p.idempotency_key: (P.SENDING, by_id[p.id] + 1, A.UNKNOWN, by_id[p.id] + 1)
                                             for p in payments}


async def test_guarded_moves_never_overwrite_the_banks_word(units: Units) -> None:
    payment = new_payment()
    async with units() as uow:
        await uow.payments.add([payment])
        await uow.payments.claim_due(10_000, datetime.now(UTC))
    now = datetime.now(UTC)
    async with units() as uow:  # the bank's answer arrives before the sender stamps the hand-over
        loaded = (await uow.payments.answered({payment.idempotency_key}))[payment.idempotency_key]
        loaded.hear(payment.idempotency_key, BankWord.ACCEPTED, "REF-2", None, now=now, quiet_before=now)
        await uow.payments.save([loaded], now)
    async with units() as uow:
        await uow.payments.hand_over({payment.idempotency_key: ("a" * 64, None)}, now)
        await uow.payments.send_later([payment.idempotency_key], now + timedelta(seconds=5), now)
        stored = (await uow.payments.answered({payment.idempotency_key}))[payment.idempotency_key]
    assert stored.status is P.ACCEPTED, "send_later moves only what is still sending"
    assert stored.attempts[payment.idempotency_key].status is A.ACCEPTED, "hand_over moves only open/unknown"


async def test_a_batch_is_written_in_one_server_statement_per_table_and_hand_over_guards_each_row(
        db: Database, units: Units) -> None:
    """An executemany runs one server statement per row: each write of a batch binds arrays instead."""
    payments = [new_payment() for _ in range(40)]
    executemany: list[str] = []

    def record(_conn: object, _cursor: object, statement: str, _params: object, _context: object,
               many: bool) -> None:
        if many:
            executemany.append(statement)

    event.listen(db.engine.sync_engine, "before_cursor_execute", record)
    try:
        now = datetime.now(UTC)
        with statements_sent(db) as sent:
            async with units() as uow:
                assert len(await uow.payments.add(payments)) == 40
            answered_first = payments[0].idempotency_key
            async with units() as uow:  # the bank's word on one attempt came before its hand-over was stamped
                loaded = (await uow.payments.answered({answered_first}))[answered_first]
                loaded.hear(answered_first, BankWord.ACCEPTED, "REF-0", None, now=now, quiet_before=now)
                await uow.payments.save([loaded], now)
            async with units() as uow:
                await uow.payments.hand_over({p.idempotency_key: (f"{i:064x}", i) for i, p in enumerate(payments)},
                                             now)
            async with units() as uow:
                answered = await uow.payments.answered({p.idempotency_key for p in payments})
                for i, p in enumerate(payments[1:], 1):
                    assert answered[p.idempotency_key].hear(
                        p.idempotency_key, BankWord.SETTLED if i % 2 else BankWord.FAILED, f"REF-{i}",
                        None if i % 2 else "account_closed", now=now, quiet_before=now - timedelta(seconds=60))
                await uow.payments.save(answered.values(), now)
    finally:
        event.remove(db.engine.sync_engine, "before_cursor_execute", record)
    assert executemany == [], executemany
    assert len(sent) == 2 + 4 + 1 + 4, sent  # add; answered + save (two tables each); hand_over; answered + save
    async with units() as uow:
        stored = await uow.payments.by_keys({p.idempotency_key for p in payments})
    first = stored[answered_first].attempts[answered_first]
    assert (first.status, first.sent_at, first.account_fingerprint) == (A.ACCEPTED, None, None), \
        "an attempt the bank already answered is not handed over again"
    assert stored[answered_first].status is P.ACCEPTED
    for i, p in enumerate(payments[1:], 1):
        got, attempt = stored[p.idempotency_key], stored[p.idempotency_key].attempts[p.idempotency_key]
        assert (got.status, got.bank_reference if i % 2 else got.failure_reason) == (
            (P.SETTLED, f"REF-{i}") if i % 2 else (P.FAILED, "account_closed"))
        assert (attempt.status, attempt.account_fingerprint, attempt.account_version, attempt.sent_at) == (
            A.SETTLED if i % 2 else A.FAILED, f"{i:064x}", i, now)
        assert (attempt.settled_at is not None) == bool(i % 2)


async def test_a_longer_value_never_matches_a_row_it_starts_with(units: Units) -> None:
    """Arrays are bound as unbounded strings: a cast to varchar(64)[] would cut the value to a row's key."""
    payment = new_payment(has_account=False)
    assert len(payment.person_ref) == 64
    async with units() as uow:
        await uow.payments.add([payment])
    async with units() as uow:
        assert await uow.payments.waiting_for_an_account({payment.person_ref + "0"}) == []
        assert [p.id for p in await uow.payments.waiting_for_an_account({payment.person_ref})] == [payment.id]


async def test_the_resolver_is_asked_about_each_unresolved_attempt_once_per_pass(units: Units) -> None:
    payment = new_payment()
    long_ago = datetime.now(UTC) - timedelta(minutes=5)
    async with units() as uow:
        await uow.payments.add([payment])
        await uow.payments.hand_over({payment.idempotency_key: ("b" * 64, None)}, long_ago)
    now = datetime.now(UTC)
    async with units() as uow:
        assert payment.idempotency_key in await uow.payments.claim_unresolved(now - timedelta(seconds=1), now)
    async with units() as uow:
        assert payment.idempotency_key not in await uow.payments.claim_unresolved(now - timedelta(seconds=1), now)


async def test_a_payment_left_sending_before_its_hand_over_is_queued_again(units: Units) -> None:
    payment = new_payment()
    async with units() as uow:
        await uow.payments.add([payment])
        await uow.payments.claim_due(10_000, datetime.now(UTC))
    later = datetime.now(UTC) + timedelta(minutes=5)
    async with units() as uow:
        assert await uow.payments.release_unsent(later - timedelta(seconds=1), later) >= 1
        stored = (await uow.payments.of_cases({payment.case_id}))[payment.case_id]
    assert (stored.status, stored.idempotency_key) == (P.PENDING, payment.idempotency_key)


async def _queued(units: Units, *payments: Payment) -> dict[uuid.UUID, tuple[str, datetime]]:
    async with units() as uow:
        rows = await uow.session.execute(text("SELECT payment_id, status, at FROM payment_queue "
                                              "WHERE payment_id = ANY(:ids)"), {"ids": [p.id for p in payments]})
    return {i: (status, at) for i, status, at in rows}


async def test_the_queue_lists_a_payment_exactly_while_it_is_pending_or_sending(units: Units) -> None:
    payment, without_account = new_payment(), new_payment(has_account=False)
    async with units() as uow:
        await uow.payments.add([payment, without_account])
        await uow.payees.store([PayeeAccount(payment.person_ref, "c", 1, "****1")], datetime.now(UTC))
    assert await _queued(units, payment, without_account) == {payment.id: ("pending", payment.next_attempt_at)}
    claimed_at = datetime.now(UTC)
    async with units() as uow:
        assert payment.id in {d.payment.id for d in await uow.payments.claim_due(10_000, claimed_at)}
    assert await _queued(units, payment) == {payment.id: ("sending", claimed_at)}
    later = claimed_at + timedelta(minutes=3)
    async with units() as uow:
        await uow.payments.send_later([payment.idempotency_key], later, datetime.now(UTC))
    assert await _queued(units, payment) == {payment.id: ("pending", later)}
    async with units() as uow:
        assert payment.id not in {d.payment.id for d in await uow.payments.claim_due(10_000, datetime.now(UTC))}, \
            "not due before its time"
        assert payment.id in {d.payment.id for d in await uow.payments.claim_due(10_000, later)}
        await uow.payments.hand_over({payment.idempotency_key: ("f" * 64, 1)}, datetime.now(UTC))
    now = datetime.now(UTC)
    async with units() as uow:
        loaded = (await uow.payments.answered({payment.idempotency_key}))[payment.idempotency_key]
        assert loaded.hear(payment.idempotency_key, BankWord.ACCEPTED, "REF-Q", None, now=now, quiet_before=now)
        await uow.payments.save([loaded], now)
    assert await _queued(units, payment) == {}, "the bank has it: no worker's business until it answers"


async def test_no_index_of_payment_names_a_column_its_moves_change(units: Units) -> None:
    """Every status move of a payment is a HOT update only while no index (key, expression or predicate) names
    a column the move changes; the worker's lists are in payment_queue instead (ADR 0044)."""
    # (idempotency_key is unique and moves only on a re-issue, rarely: that update is not HOT)
    moving = {"status", "attempt", "bank_reference", "failure_reason", "next_attempt_at", "updated_at",
              "account_version"}
    async with units() as uow:
        named = set((await uow.session.execute(text(
            "SELECT a.attname FROM pg_index AS i JOIN pg_attribute AS a ON a.attrelid = i.indrelid "
            "WHERE i.indrelid = 'payment'::regclass AND a.attnum > 0 AND (a.attnum = ANY(i.indkey) "
            "OR pg_get_expr(i.indexprs, i.indrelid) ~ ('\\m' || a.attname || '\\M') "
            "OR pg_get_expr(i.indpred, i.indrelid) ~ ('\\m' || a.attname || '\\M'))"))).scalars())
        fillfactor = (await uow.session.execute(text(
            "SELECT reloptions FROM pg_class WHERE oid = 'payment'::regclass"))).scalar_one()
    assert named & moving == set(), named
    assert fillfactor == ["fillfactor=50"]


async def test_the_tally_adds_up_per_district_and_day(units: Units) -> None:
    where = district()
    plan = [("10.10", P.SETTLED), ("20.20", P.SETTLED), ("5.05", P.FAILED), ("1.01", P.CANCELLED),
            ("2.02", P.AWAITING_ACCOUNT), ("3.03", P.PENDING)]
    payments = []
    for amount, status in plan:
        p = new_payment(where, amount, has_account=status is not P.AWAITING_ACCOUNT)
        p.status = status
        payments.append(p)
    async with units() as uow:
        await uow.payments.add(payments)
        (day,) = await uow.payments.tally(district=where)
        assert await uow.payments.tally(district=where, day=date(2026, 3, 3)) == []
        by_status = await uow.payments.count_by_status()
    assert (day.district_code, day.day) == (where, date(2026, 3, 2))
    assert (day.approved.count, day.approved.amount) == (6, Decimal("41.41"))
    assert (day.settled.count, day.settled.amount) == (2, Decimal("30.30"))
    assert (day.in_flight.count, day.in_flight.amount) == (2, Decimal("5.05"))
    assert (day.failed.amount, day.cancelled.amount, day.difference, day.alarm) == (
        Decimal("5.05"), Decimal("1.01"), Decimal(0), False)
    assert by_status["settled"] >= 2


async def test_payees_keep_the_newest_account(units: Units) -> None:
    ref, now = secrets.token_hex(32), datetime.now(UTC)
    async with units() as uow:
        await uow.payees.store([PayeeAccount(ref, "v2", 2, "****2")], now)
    async with units() as uow:
        await uow.payees.store([PayeeAccount(ref, "v1", 1, "****1")], now)  # late and older
        assert await uow.payees.versions({ref, "nobody"}) == {ref: 2}
        assert (await uow.payees.accounts({ref}))[ref] == PayeeAccount(ref, "v2", 2, "****2")


async def test_alarms_are_stored_once_per_kind_and_subject(units: Units) -> None:
    subject = f"E-{uuid.uuid4()}"
    row = {"id": uuid.uuid4(), "kind": "unknown_transfer", "subject": subject, "idempotency_key": None,
           "payment_id": None, "case_id": None, "district_code": None, "amount": Decimal("1.00"),
           "recovery_amount": Decimal("1.00"), "bank_reference": subject, "detail": "d", "raised_at": datetime.now(UTC)}
    async with units() as uow:
        assert await uow.alarms.add([row]) == ["unknown_transfer"]
    async with units() as uow:
        assert await uow.alarms.add([{**row, "id": uuid.uuid4()}]) == []
        assert (await uow.alarms.count_by_kind())["unknown_transfer"] >= 1


async def test_statements_remember_bookings_in_order_and_each_run(units: Units) -> None:
    key, day, now = f"{uuid.uuid4()}-1", date(2026, 3, 2) + timedelta(days=secrets.randbelow(3000)), datetime.now(UTC)
    rows = [{"entry_reference": f"E-{uuid.uuid4()}", "idempotency_key": key, "booked_on": day,
             "amount": Decimal("1.00"), "account_fingerprint": "f" * 64, "payment_id": None, "matched_at": now,
             "position": i} for i in range(2)]
    async with units() as uow:
        await uow.statements.add_entries(rows)
        await uow.statements.add_entries(rows)  # the same statement again
        assert not await uow.statements.reconciled(day)
        await uow.statements.record_run(day, 2, 1, now)
    async with units() as uow:
        assert await uow.statements.bookings({key}) == [(key, r["entry_reference"]) for r in rows]
        assert await uow.statements.reconciled(day)
        await uow.statements.record_run(day, 3, 0, now)  # a second run of the day replaces the first


async def _counted(units: Units) -> tuple[dict[str, int], dict[str, int], int]:
    """(the running counts, a count of the payments themselves, rows of payment_count)."""
    async with units() as uow:
        running = await uow.payments.count_by_status()
        actual = {s: n for s, n in await uow.session.execute(text(
            "SELECT status, count(*) FROM payment GROUP BY status"))}
        rows = (await uow.session.execute(text("SELECT count(*) FROM payment_count"))).scalar_one()
    return running, actual, rows


async def test_the_running_counts_follow_every_move_and_fold_to_one_row_per_status(units: Units) -> None:
    """The status gauge reads `payment_count`, kept by the triggers (ADR 0054): whatever moves a payment (the
    claim, a save, send_later, await_account, a direct statement, a delete), the counts are the table's."""
    payment, other, without_account = new_payment(), new_payment(), new_payment(has_account=False)
    async with units() as uow:
        await uow.payments.add([payment, other, without_account])
        await uow.payments.add([new_payment(case_id=payment.case_id)])  # a case paid already: nothing inserted
        await uow.payees.store([PayeeAccount(p.person_ref, "c", 1, "****1") for p in (payment, other)],
                               datetime.now(UTC))
    async with units() as uow:
        claimed = {d.payment.id for d in await uow.payments.claim_due(10_000, datetime.now(UTC))}
        assert {payment.id, other.id} <= claimed
        await uow.payments.send_later([other.idempotency_key], datetime.now(UTC), datetime.now(UTC))
        await uow.payments.hand_over({payment.idempotency_key: ("f" * 64, 1)}, datetime.now(UTC))
    now = datetime.now(UTC)
    async with units() as uow:
        loaded = (await uow.payments.answered({payment.idempotency_key}))[payment.idempotency_key]
        assert loaded.hear(payment.idempotency_key, BankWord.SETTLED, "REF-C", None, now=now, quiet_before=now)
        await uow.payments.save([loaded], now)
        await uow.session.execute(text("UPDATE payment SET status = 'cancelled' WHERE id = :id"), {"id": other.id})
        await uow.session.execute(text("UPDATE payment SET updated_at = now() WHERE id = :id"), {"id": other.id})
        await uow.session.execute(text("DELETE FROM payment WHERE id = :id"), {"id": without_account.id})
        assert await uow.payments.count_by_status() == {s: n for s, n in (await uow.session.execute(text(
            "SELECT status, count(*) FROM payment GROUP BY status"))).all()}, "its own moves, before the commit"
    running, actual, _ = await _counted(units)
    assert running == actual
    async with units() as uow:
        await uow.payments.fold_counts()
    running, actual, rows = await _counted(units)
    assert running == actual and rows == len(actual), "one row per status after the fold"


async def test_a_fold_leaves_the_counts_of_a_writer_not_yet_committed(db: Database, units: Units) -> None:
    before, _, _ = await _counted(units)
    payment = new_payment(has_account=False)
    async with units() as writer:
        await writer.payments.add([payment])
        async with units() as uow:  # another transaction folds meanwhile: it does not see the writer's rows
            await uow.payments.fold_counts()
    running, actual, _ = await _counted(units)
    assert running == actual and running[P.AWAITING_ACCOUNT.value] == before.get(P.AWAITING_ACCOUNT.value, 0) + 1


async def test_the_pending_and_sending_lists_are_read_through_the_queue(db: Database, units: Units) -> None:
    from disbursement.entrypoints import views

    where = district()
    pending, sending, settled = (new_payment(where) for _ in range(3))
    async with units() as uow:
        await uow.payments.add([pending, sending, settled])
        await uow.session.execute(text("UPDATE payment SET status = 'sending' WHERE id = :id"), {"id": sending.id})
        await uow.session.execute(text("UPDATE payment SET status = 'settled' WHERE id = :id"), {"id": settled.id})
    async with units() as uow:
        listed = {s: [p["payment_id"] for p in await views.payments(uow, status=s, district=where, limit=10,
                                                                    offset=0)]
                  for s in (P.PENDING, P.SENDING, P.SETTLED)}
        with statements_sent(db) as sent:
            await views.payments(uow, status=P.PENDING, district=where, limit=10, offset=0)
    assert listed == {P.PENDING: [str(pending.id)], P.SENDING: [str(sending.id)], P.SETTLED: [str(settled.id)]}
    assert any("payment_queue" in s for s in sent)


async def test_paid_twice_counts_the_payments_with_two_settled_attempts_through_the_reissued_index(
        units: Units) -> None:
    twice, once, reissued_once = new_payment(), new_payment(), new_payment()
    async with units() as uow:
        await uow.payments.add([twice, once, reissued_once])
        before = await uow.payments.paid_twice()
        for p, settled in ((twice, (1, 2)), (once, (1,)), (reissued_once, (2,))):
            if p is not once:
                await uow.session.execute(text(
                    "INSERT INTO payment_attempt (idempotency_key, payment_id, attempt, status) "
                    "VALUES (:key, :id, 2, 'failed')"), {"key": f"{p.id}-2", "id": p.id})
            for number in settled:
                await uow.session.execute(text("UPDATE payment_attempt SET status = 'settled' "
                                               "WHERE payment_id = :id AND attempt = :n"), {"id": p.id, "n": number})
        assert await uow.payments.paid_twice() == before + 1
        index = (await uow.session.execute(text(
            "SELECT indexdef FROM pg_indexes WHERE indexname = 'ix_attempt_reissued'"))).scalar_one()
    assert index.endswith("(payment_id) WHERE (attempt > 1)"), index
