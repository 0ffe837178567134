"""REST bank adapter (the project's bank simulator speaks it): Idempotency-Key on every transfer."""

from datetime import date
from decimal import Decimal
from typing import Any

import aiohttp

from disbursement.adapters.bank import (
    Ambiguous,
    BankRejected,
    BankResult,
    BankServerError,
    BankStatus,
    PaymentInstruction,
    StatementLine,
    with_retries,
)
from shared.http_client import traced_session  # aiohttp for the bank: ADR 0011


def _result(body: dict[str, Any]) -> BankResult:
    return BankResult(body["idempotency_key"], body.get("bank_reference"), BankStatus(body["status"]),
                      body.get("reason"))


class RestBankGateway:
    def __init__(self, base_url: str, timeout_s: float = 2.0, max_attempts: int = 4, backoff_initial_s: float = 0.2,
                 backoff_max_s: float = 5.0) -> None:
        self._base_url, self._timeout_s = base_url, timeout_s
        self._http: aiohttp.ClientSession | None = None
        self._retry = {"max_attempts": max_attempts, "initial_s": backoff_initial_s, "max_s": backoff_max_s}

    @property
    def http(self) -> aiohttp.ClientSession:
        if self._http is None:
            self._http = traced_session(self._base_url, self._timeout_s)
        return self._http

    async def submit(self, instruction: PaymentInstruction) -> BankResult:
        """Send one transfer. After an ambiguous failure the bank is asked by key before anything is re-sent."""
        body = {"amount": f"{instruction.amount:.2f}", "currency": "CNY",
                "creditor_account": instruction.creditor_account, "creditor_name": instruction.creditor_name,
                "remittance_info": instruction.remittance_info, "callback_url": instruction.callback_url}
        ambiguous = False

        async def once() -> BankResult:
            nonlocal ambiguous
            if ambiguous:
                known = await self.status(instruction.idempotency_key)
                if known is not None:
                    return known
            try:
                async with self.http.post("/v1/transfers", json=body,
                                          headers={"Idempotency-Key": instruction.idempotency_key}) as response:
                    if 400 <= response.status < 500 and response.status != 429:
                        raise BankRejected(await _reason(response))
                    if response.status >= 500 or response.status == 429:
                        raise BankServerError(response.status)
                    return _result(await response.json())
            except (TimeoutError, aiohttp.ServerDisconnectedError, aiohttp.ClientPayloadError) as exc:
                ambiguous = True  # it may have been booked: ask before sending again
                raise Ambiguous(type(exc).__name__) from exc

        return await with_retries(once, **self._retry)  # type: ignore[arg-type]

    async def status(self, idempotency_key: str) -> BankResult | None:
        """What the bank knows of an attempt, or None when it never received it."""
        return await self._transfer("GET", f"/v1/transfers/{idempotency_key}")

    async def recall(self, idempotency_key: str) -> BankResult | None:
        """POST /v1/transfers/{key}/recall: the bank stops an accepted transfer (it becomes failed, 'recalled');
        a settled or failed one stays as it is. The answer is the transfer's status either way."""
        return await self._transfer("POST", f"/v1/transfers/{idempotency_key}/recall")

    async def _transfer(self, method: str, path: str) -> BankResult | None:
        async def once() -> BankResult | None:
            async with self.http.request(method, path) as response:
                if response.status == 404:
                    return None
                if response.status >= 500 or response.status == 429:
                    raise BankServerError(response.status)
                return _result(await response.json())

        return await with_retries(once, **self._retry)  # type: ignore[arg-type]

    async def statement(self, day: date) -> list[StatementLine]:
        """GET /v1/statements/{day}: the simulator's REST statement (the same content as a camt.053)."""
        async def once() -> list[StatementLine]:
            async with self.http.get(f"/v1/statements/{day.isoformat()}") as response:
                if response.status >= 500 or response.status == 429:
                    raise BankServerError(response.status)
                response.raise_for_status()
                body = await response.json()
            return [StatementLine(e["entry_reference"], e["idempotency_key"], Decimal(e["amount"]),
                                  e["creditor_account"]) for e in body["entries"]]

        return await with_retries(once, **self._retry)  # type: ignore[arg-type]

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.close()


async def _reason(response: aiohttp.ClientResponse) -> str:
    try:
        return str((await response.json()).get("code") or f"http_{response.status}")
    except (aiohttp.ContentTypeError, ValueError):
        return f"http_{response.status}"
