"""REST bank adapter (the project's bank simulator speaks it): Idempotency-Key on every transfer."""

import httpx

from disbursement.adapters.bank import (
    Ambiguous,
    BankRejected,
    BankResult,
    BankStatus,
    PaymentInstruction,
    with_retries,
)


def _result(body: dict) -> BankResult:  # type: ignore[type-arg]
    return BankResult(body["idempotency_key"], body.get("bank_reference"), BankStatus(body["status"]),
                      body.get("reason"))


class RestBankGateway:
    def __init__(self, base_url: str, timeout_s: float = 2.0, max_attempts: int = 4, backoff_initial_s: float = 0.2,
                 backoff_max_s: float = 5.0) -> None:
        self._http = httpx.AsyncClient(base_url=base_url, timeout=timeout_s,
                                       limits=httpx.Limits(max_connections=64, max_keepalive_connections=64))
        self._retry = {"max_attempts": max_attempts, "initial_s": backoff_initial_s, "max_s": backoff_max_s}

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
                response = await self._http.post("/v1/transfers", json=body,
                                                  headers={"Idempotency-Key": instruction.idempotency_key})
            except (httpx.TimeoutException, httpx.RemoteProtocolError, httpx.ReadError) as exc:
                ambiguous = True
                raise Ambiguous(type(exc).__name__) from exc
            if 400 <= response.status_code < 500 and response.status_code != 429:
                raise BankRejected(_reason(response))
            response.raise_for_status()
            return _result(response.json())

        return await with_retries(once, **self._retry)  # type: ignore[arg-type]

    async def status(self, idempotency_key: str) -> BankResult | None:
        """What the bank knows of an attempt, or None when it never received it."""
        async def once() -> BankResult | None:
            response = await self._http.get(f"/v1/transfers/{idempotency_key}")
            if response.status_code == 404:
                return None
            response.raise_for_status()
            return _result(response.json())

        return await with_retries(once, **self._retry)  # type: ignore[arg-type]

    async def aclose(self) -> None:
        await self._http.aclose()


def _reason(response: httpx.Response) -> str:
    try:
        return str(response.json().get("code") or f"http_{response.status_code}")
    except ValueError:
        return f"http_{response.status_code}"
