"""The simulated bank's books: one transfer per idempotency key, ever, and the entries it booked (what its
statement lists). Kept in SQLite (the standard library) so a restart, or a crash, forgets nothing
(docs/decisions/0017-bank-simulator-books-in-sqlite.md). Reads come from memory; every change is written
through before the bank answers."""

import asyncio
import hashlib
import random
import sqlite3
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

from simulators.bank.settings import Faults

# The bank books by Beijing's calendar day, as the districts reconcile.
BANK_TIME = timezone(timedelta(hours=8), "CST")

SCHEMA = """
CREATE TABLE IF NOT EXISTS transfer (
    key TEXT PRIMARY KEY, fingerprint TEXT NOT NULL, amount TEXT NOT NULL, account TEXT NOT NULL,
    name TEXT NOT NULL, remittance TEXT NOT NULL, callback_url TEXT, reference TEXT NOT NULL,
    status TEXT NOT NULL, reason TEXT, received_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS entry (
    reference TEXT PRIMARY KEY, key TEXT NOT NULL, amount TEXT NOT NULL, account TEXT NOT NULL,
    booked_at REAL NOT NULL, booked_on TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS entry_booked_on ON entry (booked_on);
"""


class KeyReused(Exception):
    """The same idempotency key with different content."""


Order = tuple[str, Decimal, str, str, str, str | None]
"""One transfer as the payer orders it: key, amount, creditor account, creditor name, remittance, callback URL."""


@dataclass
class Transfer:
    key: str
    fingerprint: str
    amount: Decimal
    account: str
    name: str
    remittance: str
    callback_url: str | None
    reference: str = field(default_factory=lambda: f"BK{uuid.uuid4().hex[:16].upper()}")
    status: str = "accepted"
    reason: str | None = None
    received_at: float = field(default_factory=time.time)

    def public(self) -> dict[str, str | None]:
        return {"idempotency_key": self.key, "bank_reference": self.reference, "status": self.status,
                "reason": self.reason, "amount": f"{self.amount:.2f}"}


@dataclass(frozen=True)
class Entry:
    """Money that left the account: one line of the statement."""

    reference: str
    key: str
    amount: Decimal
    account: str
    booked_at: float

    @property
    def booked_on(self) -> date:
        return datetime.fromtimestamp(self.booked_at, UTC).astimezone(BANK_TIME).date()

    def public(self) -> dict[str, str]:
        return {"entry_reference": self.reference, "idempotency_key": self.key, "amount": f"{self.amount:.2f}",
                "currency": "CNY", "creditor_account": self.account,
                "booked_at": datetime.fromtimestamp(self.booked_at, UTC).isoformat(),
                "booked_on": self.booked_on.isoformat()}


class Books:
    def __init__(self, faults: Faults, seed: int, path: str = "") -> None:
        self.faults = faults
        self.random = random.Random(seed)
        self.stats: Counter[str] = Counter()
        self.per_remittance: Counter[str] = Counter()
        self.tasks: set[asyncio.Task[None]] = set()
        self.late: set[str] = set()  # keys the bank took but has not booked yet (it answers late)
        if path:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(path or ":memory:", isolation_level=None)
        self.db.executescript("PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;" + SCHEMA)
        self.transfers: dict[str, Transfer] = {}
        for row in self.db.execute("SELECT key, fingerprint, amount, account, name, remittance, callback_url, "
                                   "reference, status, reason, received_at FROM transfer"):
            transfer = Transfer(row[0], row[1], Decimal(row[2]), *row[3:])
            self.transfers[transfer.key] = transfer
            self.per_remittance[transfer.remittance] += 1
        self.entries: list[Entry] = [Entry(r, k, Decimal(a), acc, at) for r, k, a, acc, at in self.db.execute(
            "SELECT reference, key, amount, account, booked_at FROM entry ORDER BY booked_at")]

    def unfinished(self) -> list[Transfer]:
        """Transfers taken but not final: after a restart they go on to settle."""
        return [t for t in self.transfers.values() if t.status == "accepted"]

    def book(self, key: str, amount: Decimal, account: str, name: str, remittance: str,
             callback_url: str | None) -> tuple[Transfer, bool]:
        """(transfer, created). The same key with the same content returns the first booking."""
        [(booked, created)] = self.book_batch([(key, amount, account, name, remittance, callback_url)])
        if isinstance(booked, KeyReused):
            raise booked
        return booked, created

    def book_batch(self, orders: Sequence[Order]) -> list[tuple[Transfer | KeyReused, bool]]:
        """Per order (in order): (transfer, created), or (KeyReused, False) for a key already booked with other
        content, which refuses that order alone. The new transfers are written in one transaction."""
        out: list[tuple[Transfer | KeyReused, bool]] = []
        new: dict[str, Transfer] = {}
        for key, amount, account, name, remittance, callback_url in orders:
            fingerprint = hashlib.sha256(f"{amount:.2f}|{account}|{name}|{remittance}".encode()).hexdigest()
            existing = self.transfers.get(key) or new.get(key)
            if existing is not None:
                if existing.fingerprint != fingerprint:
                    out.append((KeyReused(key), False))
                    continue
                self.stats["duplicates_absorbed"] += 1
                out.append((existing, False))
                continue
            transfer = Transfer(key, fingerprint, amount, account, name, remittance, callback_url)
            new[key] = transfer
            out.append((transfer, True))
        if new:
            self._write("INSERT INTO transfer VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", [(
                t.key, t.fingerprint, f"{t.amount:.2f}", t.account, t.name, t.remittance, t.callback_url,
                t.reference, t.status, t.reason, t.received_at) for t in new.values()])
            self.transfers.update(new)
            self.stats["transfers_created"] += len(new)
            self.per_remittance.update(t.remittance for t in new.values())
        return out

    def set_status(self, transfer: Transfer, status: str, reason: str | None) -> None:
        self.set_statuses([(transfer, status, reason)])

    def set_statuses(self, changes: Sequence[tuple[Transfer, str, str | None]]) -> None:
        """New statuses for many transfers, written in one transaction."""
        if not changes:
            return
        self._write("UPDATE transfer SET status = ?, reason = ? WHERE key = ?",
                    [(status, reason, t.key) for t, status, reason in changes])
        for transfer, status, reason in changes:
            transfer.status, transfer.reason = status, reason

    def book_entry(self, key: str, amount: Decimal, account: str) -> Entry:
        """Money out: one statement line (a bank that books twice calls this twice for one transfer)."""
        [entry] = self.book_entries([(key, amount, account)])
        return entry

    def book_entries(self, lines: Sequence[tuple[str, Decimal, str]]) -> list[Entry]:
        """Money out for many transfers, written in one transaction."""
        now = time.time()
        entries = [Entry(f"EN{uuid.uuid4().hex[:18].upper()}", key, amount, account, now)
                   for key, amount, account in lines]
        if entries:
            self._write("INSERT INTO entry VALUES (?, ?, ?, ?, ?, ?)", [(
                e.reference, e.key, f"{e.amount:.2f}", e.account, e.booked_at, e.booked_on.isoformat())
                for e in entries])
        self.entries.extend(entries)
        self.stats["entries_booked"] += len(entries)
        return entries

    def _write(self, sql: str, rows: Sequence[tuple[object, ...]]) -> None:
        """One statement over many rows, in one transaction (the connection is otherwise in autocommit)."""
        self.db.execute("BEGIN")
        try:
            self.db.executemany(sql, rows)
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    def statement(self, day: date) -> list[Entry]:
        return [e for e in self.entries if e.booked_on == day]

    def final_status(self, transfer: Transfer) -> tuple[str, str | None]:
        f = self.faults
        if transfer.account in f.closed_accounts or (f.closed_account_suffix and
                                                     transfer.account.endswith(f.closed_account_suffix)):
            return "failed", "account_closed"
        if transfer.name in f.mismatch_names:
            return "failed", "name_mismatch"
        return "settled", None

    def chance(self, rate: float) -> bool:
        return rate > 0 and self.random.random() < rate

    def close(self) -> None:
        self.db.close()
