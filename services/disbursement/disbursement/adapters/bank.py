"""What disbursement needs from a bank, whatever the wire format (REST or ISO 20022)."""

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from enum import StrEnum
from typing import Protocol, TypeVar

import aiohttp

from shared import http_client

T = TypeVar("T")


class BankStatus(StrEnum):
    ACCEPTED = "accepted"
    SETTLED = "settled"
    FAILED = "failed"


@dataclass(frozen=True)
class PaymentInstruction:
    idempotency_key: str
    amount: Decimal
    creditor_account: str
    creditor_name: str
    remittance_info: str
    callback_url: str | None = None

    def __repr__(self) -> str:  # never print an account or a name, even by accident
        return (f"PaymentInstruction(key={self.idempotency_key!r}, amount={self.amount}, "
                f"account=****{self.creditor_account[-4:]}, name=*)")

    __str__ = __repr__


@dataclass(frozen=True)
class BankResult:
    idempotency_key: str
    bank_reference: str | None
    status: BankStatus
    reason: str | None = None


@dataclass(frozen=True)
class StatementLine:
    """One booked debit of the bank's statement. The account is the bank's plain text: fingerprint it and
    let it go; it is never stored, logged or returned."""

    entry_reference: str
    idempotency_key: str
    amount: Decimal
    creditor_account: str = field(repr=False)


class BankRejected(Exception):
    """The bank refused the instruction itself (4xx): retrying cannot help."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class BankUnavailable(Exception):
    """Retries are exhausted; the same attempt (same key) is tried again later."""


class BankGateway(Protocol):
    async def submit(self, instruction: PaymentInstruction) -> BankResult: ...

    async def status(self, idempotency_key: str) -> BankResult | None: ...

    async def recall(self, idempotency_key: str) -> BankResult | None:
        """Ask the bank to take back an attempt not yet settled; its answer is the attempt's status after."""
        ...

    async def statement(self, day: date) -> list[StatementLine]:
        """Every transfer the bank booked out of the account on a day (its own books)."""
        ...

    async def aclose(self) -> None: ...


class Ambiguous(Exception):
    """The request may or may not have reached the bank (timeout, connection dropped after sending)."""


class BankServerError(Exception):
    """The bank answered 5xx or 429: it did not take the request; try again."""

    def __init__(self, status: int) -> None:
        super().__init__(f"http_{status}")
        self.status = status


def transient(exc: BaseException) -> bool:
    return isinstance(exc, (BankServerError, Ambiguous, aiohttp.ClientConnectionError, asyncio.TimeoutError))


async def with_retries(call: Callable[[], Awaitable[T]], *, max_attempts: int, initial_s: float, max_s: float) -> T:
    """The shared bounded retries (shared.http_client) over the bank's transient failures; BankUnavailable after."""
    try:
        return await http_client.with_retries(call, max_attempts=max_attempts, initial_s=initial_s, max_s=max_s,
                                              transient=transient)
    except http_client.PartnerUnavailable as exc:
        raise BankUnavailable(str(exc)) from exc.__cause__
