"""The bank simulator's HTTP API."""

import asyncio
import hashlib
import hmac
import json
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any

import aiohttp
from fastapi import FastAPI, Header, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from simulators.bank.iso import read_pain001, write_camt053, write_pain002
from simulators.bank.ledger import Books, KeyReused, Order, Transfer
from simulators.bank.settings import BankSettings, Faults


class TransferIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    amount: str = Field(pattern=r"^\d{1,12}\.\d{2}$")
    currency: str = Field(pattern="^CNY$")
    creditor_account: str = Field(min_length=4, max_length=34)
    creditor_name: str = Field(min_length=1, max_length=140)
    remittance_info: str = Field(max_length=140)
    callback_url: str | None = None


class BatchTransferIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    idempotency_key: str = Field(min_length=1, max_length=64)
    amount: str = Field(pattern=r"^\d{1,12}\.\d{2}$")
    currency: str = Field(pattern="^CNY$")
    creditor_account: str = Field(min_length=4, max_length=34)
    creditor_name: str = Field(min_length=1, max_length=140)
    remittance_info: str = Field(max_length=140)


class TransferBatchIn(BaseModel):
    """Many transfers in one request; each keeps its own idempotency key."""

    model_config = ConfigDict(extra="forbid")
    transfers: list[BatchTransferIn] = Field(min_length=1, max_length=1000)
    callback_url: str | None = None


class StatusInquiryIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    idempotency_keys: list[Annotated[str, Field(min_length=1, max_length=64)]] = Field(min_length=1,
                                                                                        max_length=1000)


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
        schedule(books.unfinished())  # taken before a restart: they still settle
        yield
        for task in list(books.tasks):
            task.cancel()
        for session in sessions:
            await session.close()
        books.close()

    app = FastAPI(title="Bank simulator", lifespan=lifespan)
    app.state.books = books

    async def call_back(transfers: Sequence[Transfer], said: dict[str, str | None] | None = None) -> None:
        """One signed callback per callback URL for a batch of transfers: {"transfers": [their statuses]}
        (`said` overrides what it says of each: a bank that reports wrongly)."""
        by_url: dict[str, list[dict[str, str | None]]] = {}
        for t in transfers:
            if t.callback_url:
                by_url.setdefault(t.callback_url, []).append({**t.public(), **(said or {})})
        if not by_url:
            return
        if not sessions:
            sessions.append(aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)))
        for url, reports in by_url.items():
            raw = json.dumps({"transfers": reports}).encode()
            signature = hmac.new(settings.callback_secret.encode(), raw, hashlib.sha256).hexdigest()
            for _ in range(2 if books.chance(books.faults.duplicate_callback_rate) else 1):
                try:
                    async with sessions[0].post(url, data=raw, headers={
                            "Content-Type": "application/json", "X-Bank-Signature": signature}) as response:
                        await response.read()
                    books.stats["callbacks_sent"] += len(reports)  # transfers reported, however batched
                    books.stats["callback_batches_sent"] += 1
                except (TimeoutError, aiohttp.ClientError):
                    books.stats["callbacks_failed"] += len(reports)  # the payer polls by key anyway

    def finish(outcomes: Sequence[tuple[Transfer, str, str | None]]) -> None:
        """Final statuses in one go; money out (one statement line each, two for a bank that books twice)."""
        books.set_statuses(outcomes)
        paid = [t for t, status, _ in outcomes if status == "settled"]
        twice = [t for t in paid if books.chance(books.faults.duplicate_booking_rate)]
        books.stats["duplicate_bookings_injected"] += len(twice)
        books.book_entries([(t.key, t.amount, t.account) for t in paid + twice])
        books.stats.update(f"status_{status}" for _, status, _ in outcomes)

    async def settle_later(batch: Sequence[Transfer]) -> None:
        """A batch the bank took goes on to its final statuses together, reported in one callback."""
        faults = books.faults
        await asyncio.sleep(faults.settle_delay_ms / 1000)
        live = [t for t in batch if t.status == "accepted"]  # not recalled meanwhile
        if false := [t for t in live if books.chance(faults.false_failure_rate)]:
            books.stats["false_failures_injected"] += len(false)
            await call_back(false, {"status": "failed", "reason": "account_closed"})
        outcomes = [(t, *books.final_status(t)) for t in live]
        late = {t.key for t, status, _ in outcomes
                if status == "settled" and books.chance(faults.failure_then_settle_rate)}
        finish([o for o in outcomes if o[0].key not in late])
        await call_back([t for t, _, _ in outcomes if t.key not in late])
        if late:  # reported failed, then paid after all
            books.stats["failures_then_settled_injected"] += len(late)
            failed_first = [t for t in live if t.key in late]
            books.set_statuses([(t, "failed", "account_closed") for t in failed_first])
            await call_back(failed_first)
            await asyncio.sleep(faults.late_settle_ms / 1000)
            finish([(t, "settled", None) for t in failed_first])
            await call_back(failed_first)

    def schedule(batch: Sequence[Transfer]) -> None:
        if not batch:
            return
        task = asyncio.create_task(settle_later(batch))
        books.tasks.add(task)
        task.add_done_callback(books.tasks.discard)

    def book(orders: Sequence[Order]) -> list[Transfer | KeyReused]:
        """Book a batch in one go; the new transfers go on to settle together."""
        booked = books.book_batch(orders)
        schedule([t for t, created in booked if created and isinstance(t, Transfer)])
        return [t for t, _ in booked]

    def book_late(orders: Sequence[Order]) -> None:
        """The bank took these and books them only after late_booking_ms (it answers after the payer gave up)."""
        if not orders:
            return
        books.stats["late_bookings_injected"] += len(orders)
        books.late.update(o[0] for o in orders)

        async def later() -> None:
            await asyncio.sleep(books.faults.late_booking_ms / 1000)
            books.late.difference_update(o[0] for o in orders)
            book(orders)  # a key reused with other content meanwhile stays refused

        task = asyncio.create_task(later())
        books.tasks.add(task)
        task.add_done_callback(books.tasks.discard)

    def some_booked_late(orders: Sequence[Order]) -> None:
        """Each new transfer may be one the bank books late (late_booking_rate is a chance per transfer)."""
        book_late([o for o in orders if o[0] not in books.transfers and o[0] not in books.late
                   and books.chance(books.faults.late_booking_rate)])

    released = asyncio.Event()  # cleared while the faults hold calls
    released.set()

    async def latency() -> None:
        if books.faults.latency_ms:
            await asyncio.sleep(books.faults.latency_ms / 1000)
        if not released.is_set():  # counted while held: how many calls a client has under way at once
            books.stats["calls_held"] += 1
            try:
                await released.wait()
            finally:
                books.stats["calls_held"] -= 1

    async def faults_before_booking() -> Response | None:
        await latency()
        if books.chance(books.faults.error_rate):
            books.stats["errors_injected"] += 1
            return JSONResponse({"code": "unavailable"}, status_code=503)
        return None

    async def maybe_time_out(transfers: int = 1) -> None:
        """Book, then answer too late (timeout_rate is a chance per transfer; the answer is one for the call)."""
        if any(books.chance(books.faults.timeout_rate) for _ in range(transfers)):
            books.stats["timeouts_injected"] += 1
            await asyncio.sleep(books.faults.timeout_sleep_ms / 1000)

    async def hang_for_late(keys: Sequence[str]) -> bool:
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
        some_booked_late([order])
        if await hang_for_late([idempotency_key]) and idempotency_key not in books.transfers:
            return JSONResponse({"code": "unavailable"}, status_code=503)
        [booked] = book([order])
        if isinstance(booked, KeyReused):
            return JSONResponse({"code": "idempotency_key_reused"}, status_code=409)
        await maybe_time_out()
        return booked.public()

    @app.post("/v1/transfers/batch")
    async def transfer_batch(body: TransferBatchIn) -> dict[str, list[dict[str, str | None]]]:
        """Many transfers in one request, booked in one go and answered per transfer, in the order sent:
        its status (accepted, or already final for a key booked before), `rejected` with a reason (that
        transfer alone is refused: `idempotency_key_reused`), or `unavailable` (not booked: send it again)."""
        await latency()
        orders = [(t.idempotency_key, Decimal(t.amount), t.creditor_account, t.creditor_name, t.remittance_info,
                   body.callback_url) for t in body.transfers]
        unavailable = {o[0] for o in orders if books.chance(books.faults.error_rate)}  # each its own chance
        books.stats["errors_injected"] += len(unavailable)
        orders = [o for o in orders if o[0] not in unavailable]
        some_booked_late(orders)
        if await hang_for_late([o[0] for o in orders]):
            unavailable |= {o[0] for o in orders if o[0] not in books.transfers}
            orders = [o for o in orders if o[0] not in unavailable]
        booked = dict(zip((o[0] for o in orders), book(orders), strict=True))
        await maybe_time_out(len(body.transfers))

        def answer(key: str) -> dict[str, str | None]:
            if key in unavailable:
                return {"idempotency_key": key, "status": "unavailable"}
            if isinstance(found := booked[key], KeyReused):
                return {"idempotency_key": key, "status": "rejected", "reason": "idempotency_key_reused"}
            return found.public()

        return {"transfers": [answer(t.idempotency_key) for t in body.transfers]}

    @app.post("/v1/transfers/status")
    async def transfer_statuses(body: StatusInquiryIn) -> dict[str, Any]:
        """What the bank knows of many keys at once: the status of each it holds, and those it never received."""
        books.stats["status_inquiries"] += 1
        books.stats["status_keys_asked"] += len(body.idempotency_keys)
        found = [t for k in dict.fromkeys(body.idempotency_keys) if (t := books.transfers.get(k)) is not None]
        known = {t.key for t in found}
        return {"transfers": [t.public() for t in found],
                "unknown": [k for k in dict.fromkeys(body.idempotency_keys) if k not in known]}

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
            books.set_statuses([(found, "failed", "recalled")])
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
        """A pain.001 batch, booked in one go; the pain.002 answers per transaction (a key reused with other
        content is rejected alone: RJCT, AM05)."""
        if (fault := await faults_before_booking()) is not None:
            return fault
        try:
            msg_id, transactions = read_pain001(await request.body())
            orders = [(t["key"], Decimal(t["amount"]), t["account"], t["name"], t["remittance"], None)
                      for t in transactions]
        except (ValueError, InvalidOperation) as exc:
            return JSONResponse({"code": "rejected", "detail": type(exc).__name__}, status_code=400)
        some_booked_late(orders)
        if await hang_for_late([o[0] for o in orders]) and any(o[0] not in books.transfers for o in orders):
            return JSONResponse({"code": "unavailable"}, status_code=503)
        booked = book(orders)
        reports[msg_id] = [t.key for t in booked if isinstance(t, Transfer)]
        await maybe_time_out(len(orders))
        return Response(write_pain002(msg_id, [t for t in booked if isinstance(t, Transfer)],
                                      {t.args[0]: "idempotency_key_reused" for t in booked
                                       if isinstance(t, KeyReused)}), media_type="application/xml")

    @app.get("/iso20022/pain.002")
    async def pain002(end_to_end_id: Annotated[list[str], Query(max_length=1000)]) -> Response:
        """A status report on one or many EndToEndIds (repeat the parameter): those the bank holds; 404 when it
        holds none of them."""
        books.stats["status_inquiries"] += 1
        books.stats["status_keys_asked"] += len(end_to_end_id)
        found = [t for k in dict.fromkeys(end_to_end_id) if (t := books.transfers.get(k)) is not None]
        if not found:
            return JSONResponse({"code": "unknown_transfer"}, status_code=404)
        return Response(write_pain002("STATUS-INQUIRY", found), media_type="application/xml")

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
        if faults.hold_calls:
            released.clear()
        else:
            released.set()
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
