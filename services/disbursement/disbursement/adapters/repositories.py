"""Typed repositories over disbursement's tables: bulk SQL, one statement per table per batch.

They load `domain.payment.Payment` aggregates (plain objects the session does not track) and write back what
the aggregates changed in one statement per table over bound arrays (`shared.db.insert_arrays`,
`update_arrays`), built once at import: an executemany would run one server statement per row. The few
transitions that must hold against a concurrent worker without a lock on the payment (claiming due payments,
stamping an attempt as handed over, queueing a send again) are guarded bulk UPDATEs whose WHERE is the domain's
rule.
"""

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from uuid import UUID

from sqlalchemy import Row, Table, bindparam, case, func, literal_column, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from disbursement.adapters import tables
from disbursement.domain.payment import (
    HANDED_OVER_FROM,
    IN_FLIGHT,
    MAY_BE_AT_THE_BANK,
    Attempt,
    AttemptStatus,
    Payment,
    PaymentStatus,
)
from disbursement.domain.reconciliation import DayTally, Tally
from shared.db import as_arrays, in_bound_array, insert_arrays, update_arrays

PAYEE: Table = tables.PaymentRow.metadata.tables["payee"]
PAYMENT: Table = tables.PaymentRow.metadata.tables["payment"]
ATTEMPT: Table = tables.PaymentRow.metadata.tables["payment_attempt"]
ALARM: Table = tables.PaymentRow.metadata.tables["payment_alarm"]
ENTRY: Table = tables.PaymentRow.metadata.tables["statement_entry"]
RUN: Table = tables.PaymentRow.metadata.tables["statement_run"]
_PAYMENT_FIELDS = ("id", "case_id", "calculation_id", "settlement_id", "person_ref", "district_code", "amount",
                   "attempt", "idempotency_key", "approved_on", "approved_at", "next_attempt_at", "account_version",
                   "bank_reference", "failure_reason", "traceparent")


def _payment(row: Row[Any]) -> Payment:
    values = row._mapping
    return Payment(status=PaymentStatus(values["status"]), **{f: values[f] for f in _PAYMENT_FIELDS})


def _attempt(row: Row[Any]) -> Attempt:
    v = row._mapping
    return Attempt(key=v["idempotency_key"], payment_id=v["payment_id"], number=v["attempt"],
                   status=AttemptStatus(v["status"]), sent_at=v["sent_at"], bank_reference=v["bank_reference"],
                   reason=v["reason"], settled_at=v["settled_at"], account_version=v["account_version"],
                   account_fingerprint=v["account_fingerprint"])


@dataclass(frozen=True)
class Due:
    """A payment claimed for sending, with its person's account under the payee transport key (None: none)."""

    payment: Payment
    ciphertext: str | None


@dataclass(frozen=True)
class PayeeAccount:
    """A person's bank account as the registry sent it, still under the payee transport key."""

    person_ref: str
    ciphertext: str
    version: int
    masked: str


_PAYEE_COLUMNS = ("person_ref", "payee_ciphertext", "account_version", "account_masked", "updated_at")
_STORE_PAYEES = insert_arrays(PAYEE, _PAYEE_COLUMNS, "ON CONFLICT (person_ref) DO UPDATE SET " + ", ".join(
    f"{c} = excluded.{c}" for c in _PAYEE_COLUMNS[1:]) + " WHERE payee.account_version < excluded.account_version")
_VERSIONS = select(PAYEE.c.person_ref, PAYEE.c.account_version).where(in_bound_array(PAYEE.c.person_ref, "refs"))
_ACCOUNTS = select(PAYEE).where(in_bound_array(PAYEE.c.person_ref, "refs"))


class PayeeRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def store(self, accounts: Iterable[PayeeAccount], now: datetime) -> None:
        """Upsert (one account per person); an older version arriving late never overwrites a newer account."""
        rows = [{"person_ref": a.person_ref, "payee_ciphertext": a.ciphertext, "account_version": a.version,
                 "account_masked": a.masked, "updated_at": now} for a in accounts]
        if rows:
            await self.session.execute(_STORE_PAYEES, as_arrays(rows, _PAYEE_COLUMNS))

    async def versions(self, refs: Collection[str]) -> dict[str, int]:
        """Who of `refs` has an account, and its version."""
        if not refs:
            return {}
        rows = await self.session.execute(_VERSIONS, {"refs": list(refs)})
        return {ref: version for ref, version in rows}

    async def accounts(self, refs: Collection[str]) -> dict[str, PayeeAccount]:
        if not refs:
            return {}
        rows = await self.session.execute(_ACCOUNTS, {"refs": list(refs)})
        return {r.person_ref: PayeeAccount(r.person_ref, r.payee_ciphertext, r.account_version, r.account_masked)
                for r in rows}


# The statements, built once with their values bound per call: building one of these and its cache key cost
# 0.1-2 ms of CPU, every pass of the sender and the resolver (busy or idle); prebuilt, the key is memoized. The
# writes bind one array per column: one server statement per batch, where an executemany runs one per row.
_ADD_PAYMENTS = insert_arrays(PAYMENT, (*_PAYMENT_FIELDS, "status", "updated_at"),
                              "ON CONFLICT (case_id) DO NOTHING RETURNING id")
_ATTEMPT_NEW = ("idempotency_key", "payment_id", "attempt", "status")
_ADD_ATTEMPTS = insert_arrays(ATTEMPT, _ATTEMPT_NEW)


_PAYMENT_SAVED = ("status", "attempt", "idempotency_key", "bank_reference", "failure_reason", "next_attempt_at")
_SAVE_PAYMENTS = update_arrays(PAYMENT, "id", _PAYMENT_SAVED, updated_at=":now")
_ATTEMPT_SAVED = ("status", "reason", "bank_reference", "settled_at")
_SAVE_ATTEMPTS = update_arrays(ATTEMPT, "idempotency_key", _ATTEMPT_SAVED)
_HANDED_OVER = ("account_fingerprint", "account_version")
_HAND_OVER = update_arrays(
    ATTEMPT, "idempotency_key", _HANDED_OVER, status=f"'{AttemptStatus.UNKNOWN.value}'", sent_at=":now",
    # an attempt already answered (or no longer sendable) is left as it is
    where=" AND t.status IN (" + ", ".join(sorted(f"'{s.value}'" for s in HANDED_OVER_FROM)) + ")")

# The aggregates' reads (`PaymentRepository._load`): the payments, then their attempts (bound `ids`).
_PAYMENTS = select(PAYMENT).order_by(PAYMENT.c.id)
_OF_CASES = _PAYMENTS.where(in_bound_array(PAYMENT.c.case_id, "cases")).with_for_update()
_WAITING = _PAYMENTS.where(in_bound_array(PAYMENT.c.person_ref, "refs"), PAYMENT.c.status.in_([literal_column(
    f"'{s.value}'") for s in (PaymentStatus.AWAITING_ACCOUNT, PaymentStatus.FAILED)])).with_for_update()
_OF_KEYS = _PAYMENTS.where(PAYMENT.c.id.in_(select(ATTEMPT.c.payment_id).where(
    in_bound_array(ATTEMPT.c.idempotency_key, "keys"))))
_ANSWERED = _OF_KEYS.with_for_update()
_CURRENT_ATTEMPTS = select(ATTEMPT).join(PAYMENT, (PAYMENT.c.id == ATTEMPT.c.payment_id) & (
    PAYMENT.c.idempotency_key == ATTEMPT.c.idempotency_key)).where(in_bound_array(ATTEMPT.c.payment_id, "ids"))
_EVERY_ATTEMPT = select(ATTEMPT).where(in_bound_array(ATTEMPT.c.payment_id, "ids"))
_ASKED_ATTEMPTS = _EVERY_ATTEMPT.where(in_bound_array(ATTEMPT.c.idempotency_key, "keys")
                                       | (ATTEMPT.c.status == AttemptStatus.SETTLED.value))

# Claiming: the due payments picked in the queue's order (`payment_queue`, kept by triggers on `payment`: no
# index of `payment` names its status, so its moves are HOT), each payment locked by its primary key in a lateral
# subquery (SKIP LOCKED, and still pending: one another worker holds or just claimed is passed over, and the
# LIMIT counts only those taken), then updated by primary key, each with its person's account looked up by key.
# Written as a plain join of the queue to the payments, the planner hashed the whole payment table (a sequential
# scan filtered on status: 36 ms for 50,000 payments); the lateral lookup, the `= ANY(ARRAY(...))` and the
# scalar account lookups leave it nothing but index scans. The payment is locked before its queue row (the
# queue row is only read here; the triggers write it after the payment's update), as in every other writer:
# two transactions never wait for each other's rows in the opposite order.
_PAYMENT_COLUMNS = ", ".join(f"payment.{c.name}" for c in PAYMENT.c)
_ACCOUNT = "(SELECT a.{} FROM payee AS a WHERE a.person_ref = payment.person_ref)"
_PENDING, _SENDING = (f"'{s.value}'" for s in (PaymentStatus.PENDING, PaymentStatus.SENDING))
_CLAIM_DUE = text(
    "WITH picked AS (SELECT p.id FROM payment_queue AS q CROSS JOIN LATERAL (SELECT id FROM payment "
    f"WHERE payment.id = q.payment_id AND payment.status = {_PENDING} FOR UPDATE SKIP LOCKED) AS p "
    f"WHERE q.status = {_PENDING} AND q.at <= :now ORDER BY q.at LIMIT :limit) "
    f"UPDATE payment SET status = {_SENDING}, updated_at = :now, "
    f"account_version = coalesce({_ACCOUNT.format('account_version')}, payment.account_version) "
    f"WHERE payment.id = ANY(ARRAY(SELECT id FROM picked)) AND payment.status = {_PENDING} "
    f"RETURNING {_PAYMENT_COLUMNS}, {_ACCOUNT.format('payee_ciphertext')} AS payee_ciphertext"
).columns(*PAYMENT.c, PAYEE.c.payee_ciphertext)
_RELEASE_UNSENT = text(
    f"UPDATE payment SET status = {_PENDING}, next_attempt_at = :now, updated_at = :now "
    "WHERE payment.id = ANY(ARRAY(SELECT q.payment_id FROM payment_queue AS q "
    f"WHERE q.status = {_SENDING} AND q.at < :stale_before)) "
    f"AND payment.status = {_SENDING} AND payment.updated_at < :stale_before "
    "AND EXISTS (SELECT 1 FROM payment_attempt AS a WHERE a.idempotency_key = payment.idempotency_key "
    f"AND a.status = '{AttemptStatus.OPEN.value}') RETURNING payment.id")
_LAST_ASKED = func.coalesce(ATTEMPT.c.checked_at, ATTEMPT.c.sent_at)
_CLAIM_UNRESOLVED = update(ATTEMPT).where(ATTEMPT.c.idempotency_key.in_(
    select(ATTEMPT.c.idempotency_key).join(PAYMENT, PAYMENT.c.id == ATTEMPT.c.payment_id).where(
        ATTEMPT.c.status.in_([s.value for s in MAY_BE_AT_THE_BANK]),
        (_LAST_ASKED < bindparam("asked_before"))
        | ((PAYMENT.c.status == PaymentStatus.CANCELLING.value) & (_LAST_ASKED < bindparam("cancel_asked_before"))))
    .order_by(_LAST_ASKED).limit(bindparam("limit")).with_for_update(of=ATTEMPT, skip_locked=True)
    .scalar_subquery())).values(checked_at=bindparam("now")).returning(ATTEMPT.c.idempotency_key)


_REISSUED = ATTEMPT.alias("reissued")
_PAID_TWICE = select(func.count()).select_from(select(ATTEMPT.c.payment_id).where(
    ATTEMPT.c.payment_id.in_(select(_REISSUED.c.payment_id).where(_REISSUED.c.attempt > literal_column("1"))),
    ATTEMPT.c.status == AttemptStatus.SETTLED.value).group_by(ATTEMPT.c.payment_id).having(
    func.count() > 1).subquery())  # the literal 1: a bound value would keep a generic plan off the partial index
_COUNTS = text("SELECT status, sum(n) FROM payment_count GROUP BY status")
_FOLD_COUNTS = text("WITH taken AS (DELETE FROM payment_count RETURNING status, n) INSERT INTO payment_count "
                    "(status, n) SELECT status, sum(n) FROM taken GROUP BY status HAVING sum(n) <> 0")


class PaymentRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, payments: Sequence[Payment]) -> list[Payment]:
        """Insert new payments (one per case: a case already paid keeps its payment) with their first attempt;
        returns those that were new."""
        if not payments:
            return []
        arrays = {f: [getattr(p, f) for p in payments] for f in _PAYMENT_FIELDS}
        arrays["status"] = [p.status.value for p in payments]
        arrays["updated_at"] = arrays["next_attempt_at"]
        opened = set((await self.session.execute(_ADD_PAYMENTS, arrays)).scalars())
        new = [p for p in payments if p.id in opened]
        await self._insert_attempts([a for p in new for a in p.added])
        return new

    async def _insert_attempts(self, attempts: Sequence[Attempt]) -> None:
        if attempts:
            await self.session.execute(_ADD_ATTEMPTS, as_arrays([
                {"idempotency_key": a.key, "payment_id": a.payment_id, "attempt": a.number,
                 "status": a.status.value} for a in attempts], _ATTEMPT_NEW))

    async def _load(self, payments: Any, attempts: Any, params: dict[str, Any]) -> list[Payment]:
        """Payments of the statement `payments` (locked, in id order: two writers never deadlock, when it locks),
        each with its attempts of the statement `attempts` (bound `ids`: the payments' ids), and every settled key
        among them."""
        found = [_payment(r) for r in (await self.session.execute(payments, params))]
        if not found:
            return []
        by_id = {p.id: p for p in found}
        for row in await self.session.execute(attempts, {**params, "ids": list(by_id)}):
            attempt = _attempt(row)
            owner = by_id[attempt.payment_id]
            owner.attempts[attempt.key] = attempt
            if attempt.status is AttemptStatus.SETTLED:
                owner.settled_keys.add(attempt.key)
        return found

    async def of_cases(self, case_ids: Collection[UUID]) -> dict[UUID, Payment]:
        """The cases' payments, locked, each with its current attempt."""
        if not case_ids:
            return {}
        return {p.case_id: p for p in await self._load(_OF_CASES, _CURRENT_ATTEMPTS, {"cases": list(case_ids)})}

    async def waiting_for_an_account(self, refs: Collection[str]) -> list[Payment]:
        """The persons' payments an account can move (awaiting one, or failed), locked, with every attempt."""
        if not refs:
            return []
        return await self._load(_WAITING, _EVERY_ATTEMPT, {"refs": list(refs)})

    async def answered(self, keys: Collection[str]) -> dict[str, Payment]:
        """Per attempt key, its payment (locked) with that attempt loaded and every settled key known.

        The payments are locked first, then their attempts read: every writer of an attempt's bank word holds
        its payment's lock, so what is read is the latest word, never one a concurrent pass just replaced."""
        return await self._by_keys(keys, _ANSWERED)

    async def by_keys(self, keys: Collection[str]) -> dict[str, Payment]:
        """Per attempt key, its payment with that attempt (not locked: for matching a statement)."""
        return await self._by_keys(keys, _OF_KEYS)

    async def _by_keys(self, keys: Collection[str], payments: Any) -> dict[str, Payment]:
        if not keys:
            return {}
        keys = set(keys)
        found = await self._load(payments, _ASKED_ATTEMPTS, {"keys": list(keys)})
        return {key: p for p in found for key in p.attempts if key in keys}

    async def save(self, payments: Iterable[Payment], now: datetime) -> None:
        """Write what the aggregates changed: one statement per table for all of them."""
        payments = list(payments)
        changed = [p for p in payments if p.changed]
        if changed:
            await self.session.execute(_SAVE_PAYMENTS, {
                "id": [p.id for p in changed], "status": [p.status.value for p in changed],
                "attempt": [p.attempt for p in changed], "idempotency_key": [p.idempotency_key for p in changed],
                "bank_reference": [p.bank_reference for p in changed],
                "failure_reason": [p.failure_reason for p in changed],
                "next_attempt_at": [p.next_attempt_at for p in changed], "now": now})
        added = [a for p in payments for a in p.added]
        await self._insert_attempts(added)
        new = {a.key for a in added}
        attempts = [p.attempts[k] for p in payments for k in p.changed_attempts if k not in new]
        if attempts:
            await self.session.execute(_SAVE_ATTEMPTS, {
                "idempotency_key": [a.key for a in attempts], "status": [a.status.value for a in attempts],
                "reason": [a.reason for a in attempts], "bank_reference": [a.bank_reference for a in attempts],
                "settled_at": [a.settled_at for a in attempts]})
        for p in payments:
            p.changed, p.added = False, []
            p.changed_attempts.clear()

    async def claim_due(self, limit: int, now: datetime) -> list[Due]:
        """Take pending payments for sending, as `sending` (SKIP LOCKED: two senders never take the same), each
        stamped with the version of its person's account and returned with that account: one statement."""
        rows = (await self.session.execute(_CLAIM_DUE, {"now": now, "limit": limit})).all()
        return [Due(_payment(r), r.payee_ciphertext) for r in rows]

    async def await_account(self, ids: Collection[UUID]) -> None:
        """Claimed payments whose person has no account after all: they wait for one again."""
        if ids:
            await self.session.execute(update(PAYMENT).where(PAYMENT.c.id.in_(list(ids))).values(
                status=PaymentStatus.AWAITING_ACCOUNT.value))

    async def earlier_keys(self, due: Sequence[Payment]) -> dict[UUID, list[str]]:
        """For re-issued payments, the keys of every earlier attempt."""
        reissued = {p.id: p.attempt for p in due if p.attempt > 1}
        if not reissued:
            return {}
        rows = await self.session.execute(select(ATTEMPT.c.payment_id, ATTEMPT.c.idempotency_key,
                                                 ATTEMPT.c.attempt).where(ATTEMPT.c.payment_id.in_(list(reissued))))
        earlier: dict[UUID, list[str]] = {pid: [] for pid in reissued}
        for pid, key, number in rows:
            if number < reissued[pid]:
                earlier[pid].append(key)
        return earlier

    async def hand_over(self, attempts: dict[str, tuple[str, int | None]], now: datetime) -> None:
        """Attempts about to be handed to the bank (key -> (account fingerprint, account version)): from now on
        the bank may hold them (`unknown`), so none is cancelled without asking. Each keeps the account it went
        to, so its answer, even a late one after a re-issue, names that account."""
        if attempts:
            await self.session.execute(_HAND_OVER, {
                "idempotency_key": list(attempts), "account_fingerprint": [f for f, _ in attempts.values()],
                "account_version": [v for _, v in attempts.values()], "now": now})

    async def send_later(self, keys: Collection[str], at: datetime, now: datetime) -> None:
        """Payments still `sending` under these keys go back to `pending`, due at `at` (same key)."""
        if keys:
            await self.session.execute(update(PAYMENT).where(
                PAYMENT.c.idempotency_key.in_(list(keys)), PAYMENT.c.status == PaymentStatus.SENDING.value,
            ).values(status=PaymentStatus.PENDING.value, next_attempt_at=at, updated_at=now))

    async def release_unsent(self, stale_before: datetime, now: datetime) -> int:
        """Payments left `sending` by a crash before their attempt was handed to the bank (still `open`): queued
        again under the same key. (Handed over ones are `unknown`: the bank is asked about them instead.)"""
        return len((await self.session.execute(_RELEASE_UNSENT, {"stale_before": stale_before, "now": now})).all())

    async def claim_unresolved(self, asked_before: datetime, now: datetime, limit: int = 500) -> list[str]:
        """Keys the bank may hold without a final word, oldest question first; each is stamped as asked now so
        the next pass asks others (SKIP LOCKED: two resolvers never ask the same). Attempts of payments being
        cancelled are asked at once."""
        return list((await self.session.execute(_CLAIM_UNRESOLVED, {
            "asked_before": asked_before, "cancel_asked_before": now - timedelta(seconds=0.5), "now": now,
            "limit": limit})).scalars())

    async def unsettled(self, keys: Collection[str]) -> set[str]:
        """Which of these attempt keys are not settled in our books."""
        if not keys:
            return set()
        return set((await self.session.execute(select(ATTEMPT.c.idempotency_key).where(
            ATTEMPT.c.idempotency_key.in_(list(keys)), ATTEMPT.c.status != AttemptStatus.SETTLED.value))).scalars())

    async def tally(self, *, day: date | None = None, district: str | None = None, since: date | None = None,
                    where: Sequence[Any] = ()) -> list[DayTally]:
        """Per district and approval day, count and amount of the payments in each part of the identity."""
        def part(*statuses: str) -> tuple[Any, Any]:
            return (func.count(case((PAYMENT.c.status.in_(statuses), 1))),
                    func.coalesce(func.sum(case((PAYMENT.c.status.in_(statuses), PAYMENT.c.amount), else_=0)), 0))

        parts = [part(PaymentStatus.SETTLED.value), part(*(s.value for s in IN_FLIGHT)),
                 part(PaymentStatus.FAILED.value), part(PaymentStatus.CANCELLED.value)]
        query = select(PAYMENT.c.district_code, PAYMENT.c.approved_on, func.count(), func.sum(PAYMENT.c.amount),
                       *[c for p in parts for c in p]).where(*where).group_by(
            PAYMENT.c.district_code, PAYMENT.c.approved_on).order_by(PAYMENT.c.approved_on, PAYMENT.c.district_code)
        if day:
            query = query.where(PAYMENT.c.approved_on == day)
        if since:
            query = query.where(PAYMENT.c.approved_on >= since)
        if district:
            query = query.where(PAYMENT.c.district_code == district)
        out = []
        for d, on, n, total, *figures in (await self.session.execute(query)).all():
            tallies = [Tally(figures[i], figures[i + 1]) for i in range(0, len(figures), 2)]
            out.append(DayTally(d, on, Tally(n, total), *tallies))
        return out

    async def count_by_status(self) -> dict[str, int]:
        """Payments per status, from the running counts the triggers on `payment` keep (`payment_count`, 0007): a
        read of a few hundred rows at most, where a count of the payments reads the whole table (no index names
        the status, ADR 0044). Statuses no payment is in are left out."""
        rows = await self.session.execute(_COUNTS)
        return {status: int(n) for status, n in rows if n}

    async def fold_counts(self) -> None:
        """The running counts' rows folded into one per status (the gauge, every 15 s): the rows read are deleted
        and their sums appended in one statement. A payment writer only appends, so none waits for this; two
        folds at once each fold the rows the other did not take."""
        await self.session.execute(_FOLD_COUNTS)

    async def paid_twice(self) -> int:
        """Payments with more than one attempt the bank settled. Only a re-issued payment can have two: its
        attempts are numbered 1, 2, ... (one number each, `uq_payment_attempt`), so it has one numbered above 1,
        and `ix_attempt_reissued` lists exactly those (0007). Grouping every settled attempt read the whole
        attempt table every 15 s (0.6-1 s at a million, ADR 0054)."""
        return int(await self.session.scalar(_PAID_TWICE) or 0)


_ALARM_COLUMNS = tuple(c.name for c in ALARM.c)
_ADD_ALARMS = insert_arrays(ALARM, _ALARM_COLUMNS,
                            "ON CONFLICT ON CONSTRAINT uq_payment_alarm DO NOTHING RETURNING kind")
_ENTRY_COLUMNS = tuple(c.name for c in ENTRY.c)
_ADD_ENTRIES = insert_arrays(ENTRY, _ENTRY_COLUMNS, "ON CONFLICT DO NOTHING")


class AlarmRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, rows: Sequence[dict[str, Any]]) -> list[str]:
        """Store alarms (one per kind and subject, however often found); returns the kinds of the new ones."""
        if not rows:
            return []
        return list((await self.session.execute(_ADD_ALARMS, as_arrays(rows, _ALARM_COLUMNS))).scalars())

    async def count_by_kind(self) -> dict[str, int]:
        rows = await self.session.execute(select(ALARM.c.kind, func.count()).group_by(ALARM.c.kind))
        return {kind: n for kind, n in rows}


class StatementRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def bookings(self, keys: Collection[str]) -> list[tuple[str, str]]:
        """(key, entry reference) of the bookings of these keys already matched, first booked first."""
        if not keys:
            return []
        rows = await self.session.execute(select(ENTRY.c.idempotency_key, ENTRY.c.entry_reference).where(
            ENTRY.c.idempotency_key.in_(list(keys))).order_by(ENTRY.c.matched_at, ENTRY.c.position))
        return [(k, r) for k, r in rows]

    async def add_entries(self, rows: Sequence[dict[str, Any]]) -> None:
        if rows:
            await self.session.execute(_ADD_ENTRIES, as_arrays(rows, _ENTRY_COLUMNS))

    async def reconciled(self, day: date) -> bool:
        return (await self.session.execute(select(RUN.c.booked_on).where(RUN.c.booked_on == day))
                ).scalar_one_or_none() is not None

    async def record_run(self, day: date, entries: int, alarms: int, now: datetime) -> None:
        stmt = pg_insert(RUN).values(booked_on=day, entries=entries, alarms=alarms, ran_at=now)
        await self.session.execute(stmt.on_conflict_do_update(index_elements=["booked_on"], set_={
            "entries": stmt.excluded.entries, "alarms": stmt.excluded.alarms, "ran_at": stmt.excluded.ran_at}))
