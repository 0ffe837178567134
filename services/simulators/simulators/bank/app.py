"""The bank simulator's HTTP API."""

import asyncio
import hashlib
import hmac
import json
from collections import Counter
from decimal import Decimal, InvalidOperation
from typing import Any

import aiohttp
from fastapi import FastAPI, Header, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from simulators.bank.iso import read_pain001, write_pain002
from simulators.bank.ledger import Books, KeyReused, Transfer
from simulators.bank.settings import BankSettings, Faults


class TransferIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    amount: str = Field(pattern=r"^\d{1,12}\.\d{2}$")
    currency: str = Field(pattern="^CNY$")
    creditor_account: str = Field(min_length=4, max_length=34)
    creditor_name: str = Field(min_length=1, max_length=140)
    remittance_info: str = Field(max_length=140)
    callback_url: str | None = None


def create_app(settings: BankSettings | None = None) -> FastAPI:
    settings = settings or BankSettings()
    books = Books(settings.faults(), settings.seed)
    sessions: list[aiohttp.ClientSession] = []  # created in the running loop on first use
    reports: dict[str, list[str]] = {}
    app = FastAPI(title="Bank simulator")
    app.state.books = books

    async def settle_later(transfer: Transfer) -> None:
        await asyncio.sleep(books.faults.settle_delay_ms / 1000)
        transfer.status, transfer.reason = books.final_status(transfer)
        books.stats[f"status_{transfer.status}"] += 1
        if transfer.callback_url:
            times = 2 if books.chance(books.faults.duplicate_callback_rate) else 1
            body = json.dumps(transfer.public()).encode()
            signature = hmac.new(settings.callback_secret.encode(), body, hashlib.sha256).hexdigest()
            if not sessions:
                sessions.append(aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)))
            for _ in range(times):
                try:
                    async with sessions[0].post(transfer.callback_url, data=body, headers={
                            "Content-Type": "application/json", "X-Bank-Signature": signature}) as response:
                        await response.read()
                    books.stats["callbacks_sent"] += 1
                except (TimeoutError, aiohttp.ClientError):
                    books.stats["callbacks_failed"] += 1  # the payer polls by key anyway

    def schedule(transfer: Transfer) -> None:
        task = asyncio.create_task(settle_later(transfer))
        books.tasks.add(task)
        task.add_done_callback(books.tasks.discard)

    async def faults_before_booking() -> Response | None:
        if books.faults.latency_ms:
            await asyncio.sleep(books.faults.latency_ms / 1000)
        if books.chance(books.faults.error_rate):
            books.stats["errors_injected"] += 1
            return JSONResponse({"code": "unavailable"}, status_code=503)
        return None

    async def maybe_time_out() -> None:
        if books.chance(books.faults.timeout_rate):
            books.stats["timeouts_injected"] += 1
            await asyncio.sleep(books.faults.timeout_sleep_ms / 1000)

    @app.post("/v1/transfers", status_code=202)
    async def transfer(body: TransferIn, idempotency_key: str = Header(..., max_length=64)) -> Any:
        if (fault := await faults_before_booking()) is not None:
            return fault
        try:
            booked, created = books.book(idempotency_key, Decimal(body.amount), body.creditor_account,
                                         body.creditor_name, body.remittance_info, body.callback_url)
        except KeyReused:
            return JSONResponse({"code": "idempotency_key_reused"}, status_code=409)
        if created:
            schedule(booked)
        await maybe_time_out()
        return booked.public()

    @app.get("/v1/transfers/{key}")
    async def transfer_status(key: str) -> Any:
        found = books.transfers.get(key)
        if found is None:
            return JSONResponse({"code": "unknown_transfer"}, status_code=404)
        return found.public()

    @app.post("/iso20022/pain.001")
    async def pain001(request: Request) -> Response:
        if (fault := await faults_before_booking()) is not None:
            return fault
        try:
            msg_id, transactions = read_pain001(await request.body())
            booked = []
            for t in transactions:
                transfer, created = books.book(t["key"], Decimal(t["amount"]), t["account"], t["name"],
                                               t["remittance"], None)
                if created:
                    schedule(transfer)
                booked.append(transfer)
        except (ValueError, InvalidOperation, KeyReused) as exc:
            return JSONResponse({"code": "rejected", "detail": type(exc).__name__}, status_code=400)
        reports[msg_id] = [t.key for t in booked]
        await maybe_time_out()
        return Response(write_pain002(msg_id, booked), media_type="application/xml")

    @app.get("/iso20022/pain.002")
    async def pain002(end_to_end_id: str) -> Response:
        found = books.transfers.get(end_to_end_id)
        if found is None:
            return JSONResponse({"code": "unknown_transfer"}, status_code=404)
        return Response(write_pain002("STATUS-INQUIRY", [found]), media_type="application/xml")

    @app.get("/iso20022/pain.002/{msg_id}")
    async def report(msg_id: str) -> Response:
        if msg_id not in reports:
            return JSONResponse({"code": "unknown_message"}, status_code=404)
        return Response(write_pain002(msg_id, [books.transfers[k] for k in reports[msg_id]]),
                        media_type="application/xml")

    @app.put("/admin/faults")
    async def set_faults(faults: Faults) -> Faults:
        books.faults = faults
        return faults

    @app.get("/admin/stats")
    async def stats() -> dict[str, Any]:
        return {**books.stats, "transfers": len(books.transfers),
                "max_transfers_per_remittance": max(books.per_remittance.values(), default=0),
                "max_settled_per_remittance": max(Counter(t.remittance for t in books.transfers.values()
                                                          if t.status == "settled").values(), default=0),
                "settled_amount": f"{sum(t.amount for t in books.transfers.values() if t.status == 'settled'):.2f}"}

    @app.get("/admin/transfers")
    async def transfers_of(remittance_info: str) -> list[dict[str, str | None]]:
        """Every transfer booked for one remittance text (tests prove a case was never paid twice)."""
        return [t.public() for t in books.transfers.values() if t.remittance == remittance_info]

    @app.get("/admin/transfers/all")
    async def all_transfers() -> list[dict[str, object]]:
        """Every booking with when it arrived (the benchmark measures latency up to the bank call)."""
        return [{"remittance_info": t.remittance, "received_at": t.received_at, "status": t.status}
                for t in books.transfers.values()]

    @app.get("/healthz")
    @app.get("/readyz")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    return app
