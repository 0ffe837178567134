"""REST bank adapter (the project's bank simulator speaks it): Idempotency-Key on every transfer."""

from datetime import date
from decimal import Decimal
from typing import Any

import aiohttp

from disbursement.adapters.bank import BankResult, BankStatus, HttpBank, PaymentInstruction, StatementLine


def _result(body: dict[str, Any]) -> BankResult:
    return BankResult(body["idempotency_key"], body.get("bank_reference"), BankStatus(body["status"]),
                      body.get("reason"))


async def _read_result(response: aiohttp.ClientResponse) -> BankResult:
    return _result(await response.json())


class RestBankGateway(HttpBank):
    def __init__(self, base_url: str, timeout_s: float = 2.0, max_attempts: int = 4, backoff_initial_s: float = 0.2,
                 backoff_max_s: float = 5.0) -> None:
        super().__init__(base_url, timeout_s, max_attempts, backoff_initial_s, backoff_max_s)

    async def submit(self, instruction: PaymentInstruction) -> BankResult:
        """Send one transfer. After an ambiguous failure the bank is asked by key before anything is re-sent."""
        body = {"amount": f"{instruction.amount:.2f}", "currency": "CNY",
                "creditor_account": instruction.creditor_account, "creditor_name": instruction.creditor_name,
                "remittance_info": instruction.remittance_info, "callback_url": instruction.callback_url}
        return await self.submit_once(
            lambda: self.call("POST", "/v1/transfers", _read_result, refused=_reason, json=body,
                              headers={"Idempotency-Key": instruction.idempotency_key}),
            lambda: self.status(instruction.idempotency_key))

    async def status(self, idempotency_key: str) -> BankResult | None:
        """What the bank knows of an attempt, or None when it never received it."""
        return await self.ask(f"/v1/transfers/{idempotency_key}", _read_result)

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
