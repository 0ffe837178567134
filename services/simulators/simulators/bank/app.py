"""The bank simulator's HTTP API."""

import asyncio
import contextlib
import hashlib
import hmac
import json
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any

import aiohttp
from fastapi import FastAPI, Header, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from simulators.bank.iso import read_pain001, write_camt053, write_pain002
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


class EntryIn(BaseModel):
    """An entry written straight into the books (a test or a demo of a bank that booked wrongly)."""

    model_config = ConfigDict(extra="forbid")
    idempotency_key: str = Field(min_length=1, max_length=64)
    amount: str | None = Field(default=None, pattern=r"^\d{1,12}\.\d{2}$")  # default: the transfer's
    creditor_account: str | None = Field(default=None, min_length=4, max_length=34)


def create_app(settings: BankSettings | None = None) -> FastAPI:
    settings = settings or BankSettings()
    books = Books(settings.faults(), settings.seed, settings.db_path)
    sessions: list[aiohttp.ClientSession] = []  # created in the running loop on first use
    reports: dict[str, list[str]] = {}

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        for unfinished in books.unfinished():  # taken before a restart: they still settle
            schedule(unfinished)
        yield
        for task in list(books.tasks):
            task.cancel()
        for session in sessions:
            await session.close()
        books.close()

    app = FastAPI(title="Bank simulator", lifespan=lifespan)
    app.state.books = books

    async def call_back(transfer: Transfer, body: dict[str, str | None] | None = None) -> None:
        if not transfer.callback_url:
            return
        times = 2 if books.chance(books.faults.duplicate_callback_rate) else 1
        raw = json.dumps(body or transfer.public()).encode()
        signature = hmac.new(settings.callback_secret.encode(), raw, hashlib.sha256).hexdigest()
        if not sessions:
            sessions.append(aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)))
        for _ in range(times):
            try:
                async with sessions[0].post(transfer.callback_url, data=raw, headers={
                        "Content-Type": "application/json", "X-Bank-Signature": signature}) as response:
                    await response.read()
                books.stats["callbacks_sent"] += 1
            except (TimeoutError, aiohttp.ClientError):
                books.stats["callbacks_failed"] += 1  # the payer polls by key anyway

    def pay(transfer: Transfer) -> None:
        books.set_status(transfer, "settled", None)
        books.book_entry(transfer.key, transfer.amount, transfer.account)
        if books.chance(books.faults.duplicate_booking_rate):
            books.stats["duplicate_bookings_injected"] += 1
            books.book_entry(transfer.key, transfer.amount, transfer.account)

    async def settle_later(transfer: Transfer) -> None:
        faults = books.faults
        await asyncio.sleep(faults.settle_delay_ms / 1000)
        if transfer.status != "accepted":
            return  # recalled meanwhile
        if books.chance(faults.false_failure_rate):
            books.stats["false_failures_injected"] += 1
            await call_back(transfer, {**transfer.public(), "status": "failed", "reason": "account_closed"})
        status, reason = books.final_status(transfer)
        if status == "settled" and books.chance(faults.failure_then_settle_rate):
            books.stats["failures_then_settled_injected"] += 1
            books.set_status(transfer, "failed", "account_closed")
            await call_back(transfer)
            await asyncio.sleep(faults.late_settle_ms / 1000)
        if status == "settled":
            pay(transfer)
        else:
            books.set_status(transfer, status, reason)
        books.stats[f"status_{transfer.status}"] += 1
        await call_back(transfer)

    def schedule(transfer: Transfer) -> None:
        task = asyncio.create_task(settle_later(transfer))
        books.tasks.add(task)
        task.add_done_callback(books.tasks.discard)

    def book_late(orders: Sequence[tuple[str, Decimal, str, str, str, str | None]]) -> None:
        """The bank took these and books them only after late_booking_ms (it answers after the payer gave up)."""
        books.stats["late_bookings_injected"] += len(orders)
        books.late.update(o[0] for o in orders)

        async def later() -> None:
            await asyncio.sleep(books.faults.late_booking_ms / 1000)
            for order in orders:
                books.late.discard(order[0])
                with contextlib.suppress(KeyReused):
                    transfer, created = books.book(*order)
                    if created:
                        schedule(transfer)

        task = asyncio.create_task(later())
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

    async def hang_for_late(keys: list[str]) -> bool:
        """True when one of the keys is booked late: the call hangs as long, then finds it or gives up."""
        if not any(k in books.late for k in keys):
            return False
        await asyncio.sleep(books.faults.late_booking_ms / 1000 + 0.05)
        return True

    @app.post("/v1/transfers", status_code=202)
    async def transfer(body: TransferIn, idempotency_key: str = Header(..., max_length=64)) -> Any:
        if (fault := await faults_before_booking()) is not None:
            return fault
        order = (idempotency_key, Decimal(body.amount), body.creditor_account, body.creditor_name,
                 body.remittance_info, body.callback_url)
        if idempotency_key not in books.transfers and idempotency_key not in books.late and books.chance(
                books.faults.late_booking_rate):
            book_late([order])
        if await hang_for_late([idempotency_key]) and idempotency_key not in books.transfers:
            return JSONResponse({"code": "unavailable"}, status_code=503)
        try:
            booked, created = books.book(*order)
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

    @app.post("/v1/transfers/{key}/recall")
    async def recall(key: str) -> Any:
        """Stop a transfer not yet settled (it fails, 'recalled'); a final one stays as it is."""
        found = books.transfers.get(key)
        if found is None:
            return JSONResponse({"code": "unknown_transfer"}, status_code=404)
        if found.status == "accepted":
            books.set_status(found, "failed", "recalled")
            books.stats["recalled"] += 1
        return found.public()

    @app.get("/v1/statements/{day}")
    async def statement(day: date) -> dict[str, Any]:
        """Every transfer booked out of the account on a day (Beijing time), as the bank's books hold it."""
        entries = books.statement(day)
        return {"booked_on": day.isoformat(), "debtor_account": settings.debtor_account,
                "entries": [e.public() for e in entries],
                "total": f"{sum((e.amount for e in entries), Decimal(0)):.2f}"}

    @app.post("/iso20022/pain.001")
    async def pain001(request: Request) -> Response:
        if (fault := await faults_before_booking()) is not None:
            return fault
        try:
            msg_id, transactions = read_pain001(await request.body())
            orders = [(t["key"], Decimal(t["amount"]), t["account"], t["name"], t["remittance"], None)
                      for t in transactions]
            new = [o for o in orders if o[0] not in books.transfers and o[0] not in books.late]
            if new and books.chance(books.faults.late_booking_rate):
                book_late(new)
            if await hang_for_late([o[0] for o in orders]) and any(o[0] not in books.transfers for o in orders):
                return JSONResponse({"code": "unavailable"}, status_code=503)
            booked = []
            for order in orders:
                transfer, created = books.book(*order)
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

    @app.get("/iso20022/camt.053")
    async def camt053(day: date = Query(alias="date")) -> Response:
        """The day's account statement (BankToCustomerStatement) with every booked debit."""
        return Response(write_camt053(settings.debtor_account, day, books.statement(day)),
                        media_type="application/xml")

    @app.put("/admin/faults")
    async def set_faults(faults: Faults) -> Faults:
        books.faults = faults
        return faults

    @app.post("/admin/entries", status_code=201)
    async def write_entry(body: EntryIn) -> Any:
        """Book money out directly (a double booking, a wrong amount or account, a transfer nobody asked for)."""
        known = books.transfers.get(body.idempotency_key)
        amount = Decimal(body.amount) if body.amount else known.amount if known else None
        account = body.creditor_account or (known.account if known else None)
        if amount is None or account is None:  # neither given nor known from a transfer with that key
            return JSONResponse({"code": "unknown_transfer"}, status_code=404)
        books.stats["entries_written_by_hand"] += 1
        return books.book_entry(body.idempotency_key, amount, account).public()

    @app.get("/admin/stats")
    async def stats() -> dict[str, Any]:
        per_key = Counter(e.key for e in books.entries)
        settled_per_case = Counter(t.remittance for t in books.transfers.values() if t.status == "settled")
        return {**books.stats, "transfers": len(books.transfers),
                "max_transfers_per_remittance": max(books.per_remittance.values(), default=0),
                "max_settled_per_remittance": max(settled_per_case.values(), default=0),
                "settled_amount": f"{sum(t.amount for t in books.transfers.values() if t.status == 'settled'):.2f}",
                "entries": len(books.entries), "keys_booked_twice": sum(1 for n in per_key.values() if n > 1),
                "entries_amount": f"{sum((e.amount for e in books.entries), Decimal(0)):.2f}"}

    @app.get("/admin/transfers")
    async def transfers_of(remittance_info: str) -> list[dict[str, str | None]]:
        """Every transfer booked for one remittance text (tests prove a case was never paid twice)."""
        return [t.public() for t in books.transfers.values() if t.remittance == remittance_info]

    @app.get("/admin/transfers/all")
    async def all_transfers() -> list[dict[str, object]]:
        """Every booking with when it arrived (the benchmark measures latency up to the bank call)."""
        return [{"remittance_info": t.remittance, "received_at": t.received_at, "status": t.status}
                for t in books.transfers.values()]

    @app.get("/admin/entries")
    async def all_entries() -> list[dict[str, str]]:
        """Every statement entry ever booked, with the remittance text of its transfer (tests count payments
        per case from the bank's own books)."""
        return [{**e.public(), "remittance_info": t.remittance if (t := books.transfers.get(e.key)) else ""}
                for e in books.entries]

    @app.get("/healthz")
    @app.get("/readyz")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    return app
