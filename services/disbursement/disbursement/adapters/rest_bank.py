"""REST bank adapter (the project's bank simulator speaks it): transfers in batches, each under its own
idempotency key; statuses asked for many keys at once."""

from collections.abc import Sequence
from datetime import date
from decimal import Decimal
from typing import Any

import aiohttp

from disbursement.adapters.bank import (
    BankResult,
    BankStatus,
    BatchAnswer,
    HttpBank,
    PaymentInstruction,
    StatementLine,
    classify,
)

INQUIRY_MAX = 1000
"""Keys per status inquiry (the simulator's limit)."""


def _result(body: dict[str, Any]) -> BankResult:
    return BankResult(body["idempotency_key"], body.get("bank_reference"), BankStatus(body["status"]),
                      body.get("reason"))


async def _read_result(response: aiohttp.ClientResponse) -> BankResult:
    return _result(await response.json())


class RestBankGateway(HttpBank):
    inquiry_max = INQUIRY_MAX

    def __init__(self, base_url: str, timeout_s: float = 2.0, max_attempts: int = 4, backoff_initial_s: float = 0.2,
                 backoff_max_s: float = 5.0) -> None:
        super().__init__(base_url, timeout_s, max_attempts, backoff_initial_s, backoff_max_s)

    async def send(self, batch: Sequence[PaymentInstruction]) -> BatchAnswer:
        """POST /v1/transfers/batch: many transfers, each under its own Idempotency key, answered per transfer."""
        body = {"callback_url": batch[0].callback_url, "transfers": [
            {"idempotency_key": i.idempotency_key, "amount": f"{i.amount:.2f}", "currency": "CNY",
             "creditor_account": i.creditor_account, "creditor_name": i.creditor_name,
             "remittance_info": i.remittance_info} for i in batch]}

        async def read(response: aiohttp.ClientResponse) -> BatchAnswer:
            return classify([i.idempotency_key for i in batch], [
                (t["idempotency_key"], t["status"], t.get("bank_reference"), t.get("reason"))
                for t in (await response.json())["transfers"]])

        return await self.call("POST", "/v1/transfers/batch", read, refused=_reason, json=body)

    async def inquire(self, keys: Sequence[str]) -> dict[str, BankResult]:
        """POST /v1/transfers/status: what the bank knows of many attempts."""
        async def read(response: aiohttp.ClientResponse) -> list[BankResult]:
            return [_result(t) for t in (await response.json())["transfers"]]

        answered = await self.call("POST", "/v1/transfers/status", read, json={"idempotency_keys": list(keys)})
        return {r.idempotency_key: r for r in answered}

    async def recall(self, idempotency_key: str) -> BankResult | None:
        """POST /v1/transfers/{key}/recall: the bank stops an accepted transfer (it becomes failed, 'recalled');
        a settled or failed one stays as it is. The answer is the transfer's status either way."""
        return await self.ask(f"/v1/transfers/{idempotency_key}/recall", _read_result, method="POST")

    async def statement(self, day: date) -> list[StatementLine]:
        """GET /v1/statements/{day}: the simulator's REST statement (the same content as a camt.053)."""
        async def read(response: aiohttp.ClientResponse) -> list[StatementLine]:
            return [StatementLine(e["entry_reference"], e["idempotency_key"], Decimal(e["amount"]),
                                  e["creditor_account"]) for e in (await response.json())["entries"]]

        return await self.retrying(lambda: self.call("GET", f"/v1/statements/{day.isoformat()}", read))


async def _reason(response: aiohttp.ClientResponse) -> str:
    try:
        return str((await response.json()).get("code") or f"http_{response.status}")
    except (aiohttp.ContentTypeError, ValueError):
        return f"http_{response.status}"
