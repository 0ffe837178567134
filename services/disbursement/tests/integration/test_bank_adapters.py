"""The bank adapters against the bank simulator running as its own process, over real HTTP."""

import asyncio
import hashlib
import hmac
import json
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from aiohttp import web
from disbursement.adapters.bank import BankRejected, BankStatus, BankUnavailable, PaymentInstruction
from disbursement.adapters.iso20022 import Iso20022BankGateway
from disbursement.adapters.rest_bank import RestBankGateway
from simulators.bank.ledger import BANK_TIME

from shared.testing import ServiceProcess, free_port, serving

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
async def bank() -> AsyncIterator[str]:
    port = free_port()
    process = ServiceProcess("simulators.bank", {"BANK_SIM_PORT": str(port), "BANK_SIM_SETTLE_DELAY_MS": "20"},
                             port).start()
    try:
        await process.wait_ready()
        yield process.url
    finally:
        process.stop()


async def faults(bank: str, **values: object) -> None:
    async with httpx.AsyncClient(base_url=bank) as http:
        (await http.put("/admin/faults", json={"settle_delay_ms": 20, **values})).raise_for_status()


async def transfers(bank: str, remittance: str) -> list[dict]:  # type: ignore[type-arg]
    async with httpx.AsyncClient(base_url=bank) as http:
        return (await http.get("/admin/transfers", params={"remittance_info": remittance})).json()


def order(key: str, account: str = "6222020200112233", amount: str = "88.80") -> PaymentInstruction:
    return PaymentInstruction(key, Decimal(amount), account, "王芳", f"case {key}")


@pytest.fixture
async def rest(bank: str) -> AsyncIterator[RestBankGateway]:
    gateway = RestBankGateway(bank, timeout_s=0.3, max_attempts=8, backoff_initial_s=0.01, backoff_max_s=0.05)
    yield gateway
    await gateway.aclose()
    await faults(bank)


async def test_transfer_settles(bank: str, rest: RestBankGateway) -> None:
    accepted = await rest.submit(order("ok-1"))
    assert accepted.status is BankStatus.ACCEPTED and accepted.bank_reference
    await asyncio.sleep(0.2)
    settled = await rest.status("ok-1")
    assert settled is not None and settled.status is BankStatus.SETTLED
    assert await rest.status("never-sent") is None


async def test_errors_are_retried_and_book_exactly_one_transfer(bank: str, rest: RestBankGateway) -> None:
    await faults(bank, error_rate=0.4)  # the simulator's random is seeded: the same run every time
    for i in range(10):
        result = await rest.submit(order(f"err-{i}"))
        assert result.status is BankStatus.ACCEPTED
        assert len(await transfers(bank, f"case err-{i}")) == 1


async def test_a_timeout_asks_the_bank_before_resending(bank: str, rest: RestBankGateway) -> None:
    await faults(bank, timeout_rate=1.0, timeout_sleep_ms=1000)
    result = await rest.submit(order("slow-1"))  # the answer comes too late, so the adapter asks by key
    assert result.status in (BankStatus.ACCEPTED, BankStatus.SETTLED) and result.bank_reference
    assert len(await transfers(bank, "case slow-1")) == 1, "asked, not re-sent"


async def test_an_unreachable_bank_is_reported_after_bounded_retries(bank: str) -> None:
    gateway = RestBankGateway("http://127.0.0.1:9", timeout_s=0.2, max_attempts=3, backoff_initial_s=0.01,
                              backoff_max_s=0.02)
    try:
        with pytest.raises(BankUnavailable):
            await gateway.submit(order("nowhere-1"))
    finally:
        await gateway.aclose()


async def test_the_same_key_with_another_amount_is_refused(bank: str, rest: RestBankGateway) -> None:
    await rest.submit(order("reuse-1", amount="10.00"))
    with pytest.raises(BankRejected):
        await rest.submit(order("reuse-1", amount="99.00"))


async def test_a_closed_account_fails_with_its_reason(bank: str, rest: RestBankGateway) -> None:
    await rest.submit(order("closed-1", account="6222020200110000"))
    await asyncio.sleep(0.2)
    result = await rest.status("closed-1")
    assert result is not None and (result.status, result.reason) == (BankStatus.FAILED, "account_closed")


async def test_iso20022_batch_with_a_closed_account(bank: str) -> None:
    gateway = Iso20022BankGateway(bank, debtor_account="31011000001", debtor_name="Centre", timeout_s=2)
    try:
        batch = [order("iso-1"), order("iso-2", amount="12.34"), order("iso-3", account="6222020200990000")]
        first = (await gateway.submit_batch(batch)).results
        assert {k: r.status for k, r in first.items()} == {k: BankStatus.ACCEPTED for k in ("iso-1", "iso-2", "iso-3")}
        again = (await gateway.submit_batch(batch)).results  # a re-sent batch books nothing new
        assert set(again) == set(first)
        await asyncio.sleep(0.2)
        final = await gateway.statuses(["iso-1", "iso-2", "iso-3"])  # one pain.002 for the three
        assert [(r.status, r.reason) for r in final.values()] == [
            (BankStatus.SETTLED, None), (BankStatus.SETTLED, None), (BankStatus.FAILED, "account_closed")]
        assert [len(await transfers(bank, f"case {k}")) for k in final] == [1, 1, 1]
    finally:
        await gateway.aclose()


async def test_the_banks_books_survive_a_crash_and_its_statement_still_tells_the_truth(tmp_path: Path) -> None:
    """kill -9 of the simulator: transfers, bookings and a transfer taken but not yet settled all come back;
    the REST statement and the camt.053 say the same."""
    port, books = free_port(), str(tmp_path / "books.sqlite3")
    env = {"BANK_SIM_PORT": str(port), "BANK_SIM_SETTLE_DELAY_MS": "20", "BANK_SIM_DB_PATH": books}
    process = ServiceProcess("simulators.bank", env, port).start()
    rest = RestBankGateway(process.url, timeout_s=1, max_attempts=8, backoff_initial_s=0.05, backoff_max_s=0.2)
    iso = Iso20022BankGateway(process.url, debtor_account="31011000001", debtor_name="Centre", timeout_s=2,
                              max_attempts=8, backoff_initial_s=0.05, backoff_max_s=0.2)
    try:
        await process.wait_ready()
        for i in range(3):
            await rest.submit(order(f"crash-{i}", amount=f"{i + 1}.25"))
        await asyncio.sleep(0.3)
        await faults(process.url, settle_delay_ms=60_000)  # this one is taken, not settled, when the bank dies
        await rest.submit(order("crash-late", amount="9.99"))
        process.kill()
        env["BANK_SIM_SETTLE_DELAY_MS"] = "20"
        process = ServiceProcess("simulators.bank", env, port).start()
        await process.wait_ready()
        today = datetime.now(UTC).astimezone(BANK_TIME).date()
        deadline = asyncio.get_running_loop().time() + 20
        while len(lines := await rest.statement(today)) < 4:
            assert asyncio.get_running_loop().time() < deadline, lines
            await asyncio.sleep(0.2)
        assert sorted((s.idempotency_key, s.amount) for s in lines if s.idempotency_key.startswith("crash-")) == [
            ("crash-0", Decimal("1.25")), ("crash-1", Decimal("2.25")), ("crash-2", Decimal("3.25")),
            ("crash-late", Decimal("9.99"))]
        assert {(s.entry_reference, s.idempotency_key, s.amount, s.creditor_account) for s in lines} == {
            (s.entry_reference, s.idempotency_key, s.amount, s.creditor_account) for s in await iso.statement(today)}
        assert (await rest.status("crash-late")).status is BankStatus.SETTLED  # type: ignore[union-attr]
        assert (await rest.recall("crash-0")).status is BankStatus.SETTLED  # type: ignore[union-attr]
    finally:
        await rest.aclose()
        await iso.aclose()
        process.stop()


async def test_a_recall_stops_a_transfer_not_yet_settled(bank: str, rest: RestBankGateway) -> None:
    await faults(bank, settle_delay_ms=5_000)
    await rest.submit(order("recall-1"))
    recalled = await rest.recall("recall-1")
    assert recalled is not None and (recalled.status, recalled.reason) == (BankStatus.FAILED, "recalled")
    assert await rest.recall("never-sent-recall") is None


async def stats(bank: str) -> dict[str, int]:
    async with httpx.AsyncClient(base_url=bank) as http:
        return (await http.get("/admin/stats")).json()  # type: ignore[no-any-return]


async def test_a_refused_transfer_in_a_batch_does_not_fail_its_neighbours(bank: str, rest: RestBankGateway) -> None:
    await rest.submit(order("mix-2", amount="10.00"))
    answer = await rest.submit_batch([order("mix-1"), order("mix-2", amount="99.00"), order("mix-3")])
    assert {k: r.status for k, r in answer.results.items()} == {"mix-1": BankStatus.ACCEPTED,
                                                                "mix-3": BankStatus.ACCEPTED}
    assert (answer.refused, answer.retry) == ({"mix-2": "idempotency_key_reused"}, set())
    assert [len(await transfers(bank, f"case mix-{i}")) for i in (1, 2, 3)] == [1, 1, 1]
    assert (await transfers(bank, "case mix-2"))[0]["amount"] == "10.00", "the first booking stands"


@pytest.mark.parametrize("adapter", ["rest", "iso20022"])
async def test_a_batch_resent_after_a_timeout_books_nothing_twice(bank: str, adapter: str) -> None:
    gateway: RestBankGateway | Iso20022BankGateway = RestBankGateway(
        bank, timeout_s=0.3, max_attempts=8, backoff_initial_s=0.01, backoff_max_s=0.05) if adapter == "rest" else \
        Iso20022BankGateway(bank, debtor_account="31011000001", debtor_name="Centre", timeout_s=0.3, max_attempts=8,
                            backoff_initial_s=0.01, backoff_max_s=0.05)
    batch = [order(f"late-{adapter}-{i}", amount=f"{i + 1}.50") for i in range(4)]
    try:
        await faults(bank, timeout_rate=1.0, timeout_sleep_ms=1000)  # books, then answers after the payer gave up
        before = await stats(bank)
        answer = await gateway.submit_batch(batch)  # ambiguous: the adapter asks the bank before re-sending
        after = await stats(bank)
        assert answer.retry == set() and {r.status for r in answer.results.values()} <= {BankStatus.ACCEPTED,
                                                                                         BankStatus.SETTLED}
        assert after["status_inquiries"] > before.get("status_inquiries", 0), "asked by key after the timeout"
        await faults(bank)
        again = await gateway.submit_batch(batch)  # and the whole batch sent once more
        assert {k: r.bank_reference for k, r in again.results.items()} == {
            k: r.bank_reference for k, r in answer.results.items()}
        assert (await stats(bank))["transfers_created"] - before.get("transfers_created", 0) == 4
        assert [len(await transfers(bank, f"case {i.idempotency_key}")) for i in batch] == [1, 1, 1, 1]
    finally:
        await gateway.aclose()
        await faults(bank)


async def test_a_batch_callback_is_confirmed_by_one_batched_status_call(bank: str, rest: RestBankGateway) -> None:
    """The bank reports a settled batch in one signed callback; one status call for its keys bears it out."""
    received: list[tuple[bytes, str | None]] = []

    async def callback(request: web.Request) -> web.Response:
        received.append((await request.read(), request.headers.get("X-Bank-Signature")))
        return web.json_response({"status": "received"}, status=202)

    app = web.Application()
    app.router.add_post("/v1/bank/callbacks", callback)
    async with serving(app) as receiver:
        url = f"{receiver}/v1/bank/callbacks"
        batch = [replace(order(f"cb-{i}", amount=f"{i + 2}.00"), callback_url=url) for i in range(3)]
        assert set((await rest.submit_batch(batch)).results) == {"cb-0", "cb-1", "cb-2"}
        deadline = asyncio.get_running_loop().time() + 20
        while not received:
            assert asyncio.get_running_loop().time() < deadline, "no callback came"
            await asyncio.sleep(0.05)
        raw, signature = received[0]
        assert signature == hmac.new(b"dev-bank-callback-secret", raw, hashlib.sha256).hexdigest()
        reported = json.loads(raw)["transfers"]
        assert sorted((t["idempotency_key"], t["status"]) for t in reported) == [
            ("cb-0", "settled"), ("cb-1", "settled"), ("cb-2", "settled")], "one callback for the batch"
        before = await stats(bank)
        confirmed = await rest.statuses([t["idempotency_key"] for t in reported] + ["cb-never-sent"])
        assert {k: r.status if r else None for k, r in confirmed.items()} == {
            "cb-0": BankStatus.SETTLED, "cb-1": BankStatus.SETTLED, "cb-2": BankStatus.SETTLED, "cb-never-sent": None}
        after = await stats(bank)
        assert (after["status_inquiries"] - before["status_inquiries"],
                after["status_keys_asked"] - before["status_keys_asked"]) == (1, 4), "one call for every key"
