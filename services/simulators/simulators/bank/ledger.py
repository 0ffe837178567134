"""The simulated bank's books: one transfer per idempotency key, ever."""

import asyncio
import hashlib
import random
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal

from simulators.bank.settings import Faults


class KeyReused(Exception):
    """The same idempotency key with different content."""


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


class Books:
    def __init__(self, faults: Faults, seed: int) -> None:
        self.faults = faults
        self.random = random.Random(seed)
        self.transfers: dict[str, Transfer] = {}
        self.stats: Counter[str] = Counter()
        self.per_remittance: Counter[str] = Counter()
        self.tasks: set[asyncio.Task[None]] = set()

    def book(self, key: str, amount: Decimal, account: str, name: str, remittance: str,
             callback_url: str | None) -> tuple[Transfer, bool]:
        """(transfer, created). The same key with the same content returns the first booking."""
        fingerprint = hashlib.sha256(f"{amount:.2f}|{account}|{name}|{remittance}".encode()).hexdigest()
        existing = self.transfers.get(key)
        if existing is not None:
            if existing.fingerprint != fingerprint:
                raise KeyReused(key)
            self.stats["duplicates_absorbed"] += 1
            return existing, False
        transfer = Transfer(key, fingerprint, amount, account, name, remittance, callback_url)
        self.transfers[key] = transfer
        self.stats["transfers_created"] += 1
        self.per_remittance[remittance] += 1
        return transfer, True

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
