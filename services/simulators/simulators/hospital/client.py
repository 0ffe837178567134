"""A hospital's signed client for the intake API (what an integrator would write)."""

from typing import Any

import httpx
import orjson

from shared.security.hospital_signing import signed_headers


class IntakeClient:
    def __init__(self, base_url: str, hospital_id: str, secret: str, timeout: float = 30) -> None:
        self.hospital_id, self._secret = hospital_id, secret
        self._http = httpx.AsyncClient(base_url=base_url, timeout=timeout)

    async def request(self, method: str, path: str, body: Any = None, *, raw: bytes | None = None,
                      headers: dict[str, str] | None = None) -> httpx.Response:
        """A signed request; `raw` sends bytes as they are (for tests of bad input)."""
        content = raw if raw is not None else (orjson.dumps(body) if body is not None else b"")
        signed = signed_headers(self.hospital_id, self._secret, method, path, content)
        return await self._http.request(method, path, content=content,
                                        headers={"Content-Type": "application/json", **signed, **(headers or {})})

    async def push(self, settlement: dict[str, Any]) -> httpx.Response:
        return await self.request("POST", "/v1/settlements", settlement)

    async def push_batch(self, settlements: list[dict[str, Any]]) -> httpx.Response:
        return await self.request("POST", "/v1/settlements:batch", {"items": settlements})

    async def reverse(self, hospital_settlement_id: str, reason: str | None = None) -> httpx.Response:
        return await self.request("POST", f"/v1/settlements/{hospital_settlement_id}/reversal", {"reason": reason})

    async def status(self, hospital_settlement_id: str) -> httpx.Response:
        return await self.request("GET", f"/v1/settlements/{hospital_settlement_id}")

    async def summary(self) -> dict[str, int]:
        response = await self.request("GET", "/v1/summary")
        response.raise_for_status()
        counts: dict[str, int] = response.json()
        return counts

    async def aclose(self) -> None:
        await self._http.aclose()
