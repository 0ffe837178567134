"""What disbursement needs from a bank, whatever the wire format (REST or ISO 20022)."""

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from typing import Protocol, TypeVar

import httpx
from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_exponential_jitter

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

    async def aclose(self) -> None: ...


class Ambiguous(Exception):
    """The request may or may not have reached the bank (timeout, connection dropped after sending)."""


def transient(exc: BaseException) -> bool:
    if isinstance(exc, httpx.HTTPStatusError):
        return exc.response.status_code >= 500 or exc.response.status_code == 429
    return isinstance(exc, (httpx.TransportError, Ambiguous))


async def with_retries(call: Callable[[], Awaitable[T]], *, max_attempts: int, initial_s: float, max_s: float) -> T:
    """Bounded retries with exponential backoff and jitter for transient failures; BankUnavailable after."""
    try:
        async for attempt in AsyncRetrying(stop=stop_after_attempt(max_attempts), reraise=True,
                                           wait=wait_exponential_jitter(multiplier=initial_s, max=max_s),
                                           retry=retry_if_exception(transient)):
            with attempt:
                return await call()
    except Exception as exc:
        if transient(exc):
            raise BankUnavailable(type(exc).__name__) from exc
        raise
    raise BankUnavailable("no attempt made")  # unreachable: AsyncRetrying always makes one attempt
