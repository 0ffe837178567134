"""The bank adapters against the bank simulator running as its own process, over real HTTP."""

import asyncio
from collections.abc import AsyncIterator
from decimal import Decimal

import httpx
import pytest
from disbursement.adapters.bank import BankRejected, BankStatus, BankUnavailable, PaymentInstruction
from disbursement.adapters.iso20022 import Iso20022BankGateway
from disbursement.adapters.rest_bank import RestBankGateway

from shared.testing import ServiceProcess, free_port

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
        first = await gateway.submit_batch(batch)
        assert {k: r.status for k, r in first.items()} == {k: BankStatus.ACCEPTED for k in ("iso-1", "iso-2", "iso-3")}
        again = await gateway.submit_batch(batch)  # a re-sent batch books nothing new
        assert set(again) == set(first)
        await asyncio.sleep(0.2)
        final = {k: await gateway.status(k) for k in ("iso-1", "iso-2", "iso-3")}
        assert [(r.status, r.reason) for r in final.values()] == [
            (BankStatus.SETTLED, None), (BankStatus.SETTLED, None), (BankStatus.FAILED, "account_closed")]
        assert [len(await transfers(bank, f"case {k}")) for k in final] == [1, 1, 1]
    finally:
        await gateway.aclose()
