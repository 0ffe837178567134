"""In-memory stand-ins for disbursement's unit of work, repositories and bank, for service-layer tests.

They hold the aggregates as the tables would (a loaded payment carries only the attempts the real repository
loads with it) and commit or roll back as a transaction does: a unit of work works on a copy of the books,
which replaces them only when it ends without an error.
"""

import copy
from collections import Counter
from collections.abc import AsyncIterator, Collection, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from typing import Any
from uuid import UUID

import pytest
from disbursement import bootstrap
from disbursement.adapters.bank import (
    BankResult,
    BankStatus,
    BankUnavailable,
    BatchAnswer,
    PaymentInstruction,
    StatementLine,
)
from disbursement.adapters.repositories import Due, PayeeAccount
from disbursement.config import DisbursementSettings
from disbursement.dependencies import DisbursementDeps
from disbursement.domain.payment import (
    HANDED_OVER_FROM,
    MAY_BE_AT_THE_BANK,
    Attempt,
    AttemptStatus,
    Payment,
    PaymentStatus,
)

from shared.messaging.outbox import Outgoing


@dataclass
class Books:
    payees: dict[str, PayeeAccount] = field(default_factory=dict)
    payments: dict[UUID, Payment] = field(default_factory=dict)
    attempts: dict[str, Attempt] = field(default_factory=dict)
    checked_at: dict[str, datetime] = field(default_factory=dict)
    alarms: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    entries: dict[str, dict[str, Any]] = field(default_factory=dict)
    runs: dict[date, tuple[int, int]] = field(default_factory=dict)


def _row(p: Payment) -> Payment:
    return replace(p, attempts={}, settled_keys=set(), events=[], changed=False, changed_attempts=set(), added=[])


class FakePayees:
    def __init__(self, books: Books) -> None:
        self.books = books

    async def store(self, accounts: Iterable[PayeeAccount], now: datetime) -> None:
        for a in accounts:
            known = self.books.payees.get(a.person_ref)
            if known is None or known.version < a.version:
                self.books.payees[a.person_ref] = a

    async def versions(self, refs: Collection[str]) -> dict[str, int]:
        return {r: a.version for r, a in self.books.payees.items() if r in refs}

    async def accounts(self, refs: Collection[str]) -> dict[str, PayeeAccount]:
        return {r: a for r, a in self.books.payees.items() if r in refs}


class FakePayments:
    def __init__(self, books: Books) -> None:
        self.books = books

    def _loaded(self, p: Payment, keys: Collection[str] | None = None) -> Payment:
        """A copy as the repository loads it: the attempts asked for (all when None), every settled key."""
        payment = copy.deepcopy(_row(p))
        for a in self.books.attempts.values():
            if a.payment_id != p.id:
                continue
            if a.status is AttemptStatus.SETTLED:
                payment.settled_keys.add(a.key)
            if keys is None or a.key in keys:
                payment.attempts[a.key] = copy.deepcopy(a)
        return payment

    async def add(self, payments: Sequence[Payment]) -> list[Payment]:
        cases = {p.case_id for p in self.books.payments.values()}
        new = [p for p in payments if p.case_id not in cases]
        for p in new:
            self.books.payments[p.id] = copy.deepcopy(_row(p))
            for a in p.added:
                self.books.attempts[a.key] = copy.deepcopy(a)
        return new

    async def of_cases(self, case_ids: Collection[UUID]) -> dict[UUID, Payment]:
        return {p.case_id: self._loaded(p, {p.idempotency_key}) for p in self.books.payments.values()
                if p.case_id in case_ids}

    async def waiting_for_an_account(self, refs: Collection[str]) -> list[Payment]:
        return [self._loaded(p) for p in self.books.payments.values() if p.person_ref in refs
                and p.status in (PaymentStatus.AWAITING_ACCOUNT, PaymentStatus.FAILED)]

    async def answered(self, keys: Collection[str]) -> dict[str, Payment]:
        by_payment: dict[UUID, Payment] = {}
        found = {}
        for key in keys:
            if (a := self.books.attempts.get(key)) is None:
                continue
            if a.payment_id not in by_payment:
                by_payment[a.payment_id] = self._loaded(self.books.payments[a.payment_id], keys)
            found[key] = by_payment[a.payment_id]
        return found

    async def save(self, payments: Iterable[Payment], now: datetime) -> None:
        for p in payments:
            if p.changed:
                self.books.payments[p.id] = copy.deepcopy(_row(p))
            for a in p.added:
                self.books.attempts[a.key] = copy.deepcopy(a)
            for key in p.changed_attempts:
                self.books.attempts[key] = copy.deepcopy(p.attempts[key])
            p.changed, p.added = False, []
            p.changed_attempts.clear()

    async def claim_due(self, limit: int, now: datetime) -> list[Due]:
        due = sorted((p for p in self.books.payments.values()
                      if p.status is PaymentStatus.PENDING and p.next_attempt_at <= now),
                     key=lambda p: p.next_attempt_at)[:limit]
        for p in due:
            p.status = PaymentStatus.SENDING
            if (account := self.books.payees.get(p.person_ref)) is not None:
                p.account_version = account.version
        return [Due(self._loaded(p, ()), a.ciphertext if (a := self.books.payees.get(p.person_ref)) else None)
                for p in due]

    async def await_account(self, ids: Collection[UUID]) -> None:
        for pid in ids:
            self.books.payments[pid].status = PaymentStatus.AWAITING_ACCOUNT

    async def earlier_keys(self, due: Sequence[Payment]) -> dict[UUID, list[str]]:
        return {p.id: [a.key for a in self.books.attempts.values() if a.payment_id == p.id and a.number < p.attempt]
                for p in due if p.attempt > 1}

    async def hand_over(self, attempts: dict[str, tuple[str, int | None]], now: datetime) -> None:
        for key, (fp, version) in attempts.items():
            a = self.books.attempts[key]
            if a.status in HANDED_OVER_FROM:
                a.status, a.sent_at, a.account_fingerprint = AttemptStatus.UNKNOWN, now, fp
                a.account_version = version

    async def send_later(self, keys: Collection[str], at: datetime, now: datetime) -> None:
        for p in self.books.payments.values():
            if p.idempotency_key in keys and p.status is PaymentStatus.SENDING:
                p.status, p.next_attempt_at = PaymentStatus.PENDING, at

    async def release_unsent(self, stale_before: datetime, now: datetime) -> int:
        return 0  # these books keep no updated_at: a crash mid-send is the integration tests' subject

    async def claim_unresolved(self, asked_before: datetime, now: datetime, limit: int = 500) -> list[str]:
        keys = []
        for a in self.books.attempts.values():
            asked = self.books.checked_at.get(a.key) or a.sent_at
            if a.status in MAY_BE_AT_THE_BANK and asked is not None and asked < asked_before:
                self.books.checked_at[a.key] = now
                keys.append(a.key)
        return keys[:limit]

    async def by_keys(self, keys: Collection[str]) -> dict[str, Payment]:
        return {k: self._loaded(self.books.payments[a.payment_id], {k}) for k in keys
                if (a := self.books.attempts.get(k)) is not None}

    async def unsettled(self, keys: Collection[str]) -> set[str]:
        return {k for k in keys if k in self.books.attempts and self.books.attempts[k].status
                is not AttemptStatus.SETTLED}


class FakeAlarms:
    def __init__(self, books: Books) -> None:
        self.books = books

    async def add(self, rows: Sequence[dict[str, Any]]) -> list[str]:
        new = [r for r in rows if (r["kind"], r["subject"]) not in self.books.alarms]
        for r in new:
            self.books.alarms[(r["kind"], r["subject"])] = r
        return [r["kind"] for r in new]

    async def count_by_kind(self) -> dict[str, int]:
        return dict(Counter(kind for kind, _ in self.books.alarms))


class FakeStatements:
    def __init__(self, books: Books) -> None:
        self.books = books

    async def bookings(self, keys: Collection[str]) -> list[tuple[str, str]]:
        return [(e["idempotency_key"], e["entry_reference"]) for e in self.books.entries.values()
                if e["idempotency_key"] in keys]

    async def add_entries(self, rows: Sequence[dict[str, Any]]) -> None:
        for row in rows:
            self.books.entries.setdefault(row["entry_reference"], row)

    async def reconciled(self, day: date) -> bool:
        return day in self.books.runs

    async def record_run(self, day: date, entries: int, alarms: int, now: datetime) -> None:
        self.books.runs[day] = (entries, alarms)


class FakeUnitOfWork:
    def __init__(self, books: Books) -> None:
        self.books = books
        self.payees, self.payments, self.alarms = FakePayees(books), FakePayments(books), FakeAlarms(books)
        self.statements = FakeStatements(books)
        self.emitted: list[Outgoing] = []
        self.wakeups: list[str] = []

    def emit(self, *events: Outgoing) -> None:
        self.emitted.extend(events)

    @property
    def pending(self) -> tuple[Outgoing, ...]:
        return tuple(self.emitted)

    def wake_sender(self) -> None:
        self.wakeups.append("sender")

    def wake_resolver(self) -> None:
        self.wakeups.append("resolver")


class FakeStore:
    """The books, and units of work over them (each a transaction: all or nothing)."""

    def __init__(self) -> None:
        self.books = Books()
        self.outbox: list[Outgoing] = []  # events carry spans: committed as they are, never copied
        self.wakeups: list[str] = []

    @asynccontextmanager
    async def units(self) -> AsyncIterator[FakeUnitOfWork]:
        uow = FakeUnitOfWork(copy.deepcopy(self.books))
        yield uow
        self.books = uow.books
        self.outbox.extend(uow.emitted)
        self.wakeups.extend(uow.wakeups)


class FakeBank:
    """A bank that books what it is sent and answers by key; `word` sets what it says about a key next."""

    def __init__(self) -> None:
        self.sent: list[PaymentInstruction] = []
        self.known: dict[str, BankResult] = {}
        self.unavailable = False
        self.recalled: list[str] = []
        self.lines: list[StatementLine] = []
        self.statements_fetched = 0
        self.calls: list[str] = []
        """Every batch call made (submit, statuses): one per pass, however many payments."""

    def word(self, key: str, status: BankStatus, reason: str | None = None) -> None:
        self.known[key] = BankResult(key, f"REF-{key[-6:]}", status, reason)

    async def submit_batch(self, instructions: Sequence[PaymentInstruction]) -> BatchAnswer:
        self.calls.append("submit")
        if self.unavailable:  # as the adapters answer once their retries are spent
            return BatchAnswer(retry={i.idempotency_key for i in instructions})
        self.sent.extend(instructions)
        return BatchAnswer(results={i.idempotency_key: self.known.setdefault(i.idempotency_key, BankResult(
            i.idempotency_key, f"REF-{i.idempotency_key[-6:]}", BankStatus.ACCEPTED)) for i in instructions})

    async def statuses(self, keys: Sequence[str]) -> dict[str, BankResult | None]:
        self.calls.append("statuses")
        if self.unavailable:
            raise BankUnavailable("connection refused")
        return {k: self.known.get(k) for k in keys}

    async def submit(self, instruction: PaymentInstruction) -> BankResult:
        answer = await self.submit_batch([instruction])
        if instruction.idempotency_key in answer.retry:
            raise BankUnavailable("connection refused")
        return answer.results[instruction.idempotency_key]

    async def status(self, idempotency_key: str) -> BankResult | None:
        return (await self.statuses([idempotency_key]))[idempotency_key]

    async def recall(self, idempotency_key: str) -> BankResult | None:
        self.recalled.append(idempotency_key)
        return await self.status(idempotency_key)

    async def statement(self, day: date) -> list[StatementLine]:
        if self.unavailable:
            raise BankUnavailable("connection refused")
        self.statements_fetched += 1
        return self.lines

    async def aclose(self) -> None:
        return None


@pytest.fixture
def store() -> FakeStore:
    return FakeStore()


@pytest.fixture
def bank() -> FakeBank:
    return FakeBank()


@pytest.fixture
def deps(bank: FakeBank) -> DisbursementDeps:
    """The service's dependencies as bootstrap builds them, on the fake bank."""
    return bootstrap.dependencies(DisbursementSettings(), bank=bank)
