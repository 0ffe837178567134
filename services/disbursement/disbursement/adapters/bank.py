"""What disbursement needs from a bank, whatever the wire format (REST or ISO 20022)."""

import asyncio
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from enum import StrEnum
from typing import Any, Protocol, TypeVar

import aiohttp

from shared import http_client
from shared.http_client import PartnerSession  # aiohttp for the bank (ADR 0011), traced when kept (0053)

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


@dataclass
class BatchAnswer:
    """The bank's answer to a batch, per transfer: its word (`results`), a refusal of that instruction alone
    (`refused`: key -> reason; retrying cannot help), or no word (`retry`: not answered, not booked, or
    unreadable; the same key goes again, after asking the bank when the call's fate is ambiguous)."""

    results: dict[str, BankResult] = field(default_factory=dict)
    refused: dict[str, str] = field(default_factory=dict)
    retry: set[str] = field(default_factory=set)

    def absorb(self, other: "BatchAnswer") -> None:
        """Add a later answer about keys this one left to retry."""
        self.results.update(other.results)
        self.refused.update(other.refused)
        self.retry = (self.retry - other.results.keys() - other.refused.keys()) | other.retry


REFUSED = "rejected"


def classify(sent: Sequence[str], items: Sequence[tuple[str, str, str | None, str | None]]) -> BatchAnswer:
    """A batch answer's items (key, status, bank reference, reason) sorted per key sent. A status is a
    `BankStatus`, `rejected` (refused alone) or `unavailable` (not booked); anything else, a key answered
    twice with different words, or a key not answered at all leaves that key to retry: never guessed. Items
    about keys not sent are ignored."""
    words: dict[str, set[tuple[str, str | None, str | None]]] = {}
    wanted = set(sent)
    for key, status, reference, reason in items:
        if key in wanted:
            words.setdefault(key, set()).add((status, reference, reason))
    answer = BatchAnswer()
    for key in dict.fromkeys(sent):
        said = words.get(key, set())
        if len(said) != 1:
            answer.retry.add(key)
            continue
        [(status, reference, reason)] = said
        if status == REFUSED:
            answer.refused[key] = reason or "rejected"
        elif status in BankStatus.__members__.values():
            answer.results[key] = BankResult(key, reference, BankStatus(status), reason)
        else:
            answer.retry.add(key)
    return answer


class BankGateway(Protocol):
    async def submit_batch(self, instructions: Sequence[PaymentInstruction]) -> BatchAnswer:
        """Hand many transfers to the bank in one call (bounded retries only when a call fails); every key sent
        is in the answer, as a word, a refusal, or to retry later under the same key."""
        ...

    async def statuses(self, keys: Sequence[str]) -> dict[str, BankResult | None]:
        """What the bank says of many keys, in one call: None for a key it never received."""
        ...

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


class HttpBank(ABC):
    """What both wire formats share: the traced session, the bounded retries, how a bank answer is classified
    (5xx/429: try again; a refusal; not known), and the submission that asks before it re-sends."""

    inquiry_max: int  # keys per status inquiry the bank takes

    def __init__(self, base_url: str, timeout_s: float, max_attempts: int, backoff_initial_s: float,
                 backoff_max_s: float) -> None:
        self._base_url, self._timeout_s = base_url, timeout_s
        self._max_attempts, self._initial_s, self._max_s = max_attempts, backoff_initial_s, backoff_max_s
        self._http: PartnerSession | None = None

    @property
    def http(self) -> PartnerSession:
        """A request is a client span in the settlement's trace (and carries its traceparent) only when that span
        can be recorded; in an unsampled trace it goes through a plain session (ADR 0053)."""
        if self._http is None:
            self._http = PartnerSession(self._base_url, self._timeout_s)
        return self._http

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.close()

    async def retrying(self, call: Callable[[], Awaitable[T]]) -> T:
        return await with_retries(call, max_attempts=self._max_attempts, initial_s=self._initial_s,
                                  max_s=self._max_s)

    async def call(self, method: str, path: str, read: Callable[[aiohttp.ClientResponse], Awaitable[T]], *,
                   refused: Callable[[aiohttp.ClientResponse], Awaitable[str]] | None = None, **request: Any) -> T:
        """One request (not retried: the caller's `retrying` or `send_batch` does), its answer classified."""
        async with self.http.request(method, path, **request) as response:
            await _classify(response, refused)
            return await read(response)

    async def ask(self, path: str, read: Callable[[aiohttp.ClientResponse], Awaitable[T]], *, method: str = "GET",
                  **request: Any) -> T | None:
        """A status inquiry, retried: None when the bank does not know what was asked about (404)."""
        return await self.retrying(lambda: self.ask_once(path, read, method=method, **request))

    async def ask_once(self, path: str, read: Callable[[aiohttp.ClientResponse], Awaitable[T]], *,
                       method: str = "GET", **request: Any) -> T | None:
        """A status inquiry, not retried: None when the bank does not know what was asked about (404)."""
        async with self.http.request(method, path, **request) as response:
            if response.status == 404:
                return None
            await _classify(response, None)
            return await read(response)

    async def send_batch(self, instructions: Sequence[PaymentInstruction],
                         send: Callable[[Sequence[PaymentInstruction]], Awaitable[BatchAnswer]],
                         ask: Callable[[Sequence[str]], Awaitable[dict[str, BankResult | None]]]) -> BatchAnswer:
        """A batch in one call; only a call that fails is tried again (bounded), and only with the transfers the
        bank has not answered. After an ambiguous failure (a timeout, the connection dropped after sending) the
        bank is asked about those keys first (`ask`, one call): it may have booked them already. What the bank
        never answered within the retries is left to retry later, under the same keys."""
        answer = BatchAnswer(retry={i.idempotency_key for i in instructions})
        ambiguous = False

        async def once() -> None:
            nonlocal ambiguous
            if ambiguous:
                known = await ask(sorted(answer.retry))
                answer.absorb(BatchAnswer(results={k: r for k, r in known.items() if r is not None},
                                          retry={k for k, r in known.items() if r is None}))
            left = [i for i in instructions if i.idempotency_key in answer.retry]
            if not left:
                return
            try:
                answer.absorb(await send(left))
            except (TimeoutError, aiohttp.ServerDisconnectedError, aiohttp.ClientPayloadError) as exc:
                ambiguous = True
                raise Ambiguous(type(exc).__name__) from exc
            if answer.retry:  # the bank answered, but not for every transfer: those go again
                raise BankServerError(503)

        try:
            await self.retrying(once)
        except BankUnavailable:
            pass  # answer.retry holds what is still without a word
        except BankRejected as exc:  # the bank refused the call itself (4xx): each transfer in it is refused
            answer.absorb(BatchAnswer(refused=dict.fromkeys(answer.retry, exc.reason)))
        return answer

    async def submit(self, instruction: PaymentInstruction) -> BankResult:
        """One transfer (a batch of one): BankRejected when the bank refuses it, BankUnavailable without a word."""
        answer = await self.submit_batch([instruction])
        key = instruction.idempotency_key
        if key in answer.refused:
            raise BankRejected(answer.refused[key])
        if key not in answer.results:
            raise BankUnavailable("no answer for the transfer")
        return answer.results[key]

    async def status(self, idempotency_key: str) -> BankResult | None:
        """What the bank knows of one attempt, or None when it never received it."""
        return (await self.statuses([idempotency_key]))[idempotency_key]

    async def submit_batch(self, instructions: Sequence[PaymentInstruction]) -> BatchAnswer:
        return await self.send_batch(instructions, self.send, self._statuses)

    async def statuses(self, keys: Sequence[str]) -> dict[str, BankResult | None]:
        """What the bank knows of many attempts (None: it never received one), retried as a whole."""
        return await self.retrying(lambda: self._statuses(keys))

    async def _statuses(self, keys: Sequence[str]) -> dict[str, BankResult | None]:
        found: dict[str, BankResult | None] = dict.fromkeys(keys)
        for chunk in range(0, len(keys), self.inquiry_max):
            answered = await self.inquire(keys[chunk:chunk + self.inquiry_max])
            found.update((k, r) for k, r in answered.items() if k in found)
        return found

    @abstractmethod
    async def send(self, batch: Sequence[PaymentInstruction]) -> BatchAnswer:
        """One batch call in the bank's format, not retried (`send_batch` does), its answer per transfer."""

    @abstractmethod
    async def inquire(self, keys: Sequence[str]) -> dict[str, BankResult]:
        """One status inquiry of at most `inquiry_max` keys, not retried: the attempts the bank knows of."""


async def _classify(response: aiohttp.ClientResponse,
                    refused: Callable[[aiohttp.ClientResponse], Awaitable[str]] | None) -> None:
    """5xx or 429: the bank did not take the request (BankServerError, retried). With `refused`, another 4xx
    is the bank refusing the instruction itself (BankRejected with the reason `refused` reads: retrying cannot
    help). Any other error status raises."""
    if response.status >= 500 or response.status == 429:
        raise BankServerError(response.status)
    if refused is not None and 400 <= response.status < 500:
        raise BankRejected(await refused(response))
    response.raise_for_status()
