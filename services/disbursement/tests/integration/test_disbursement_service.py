"""Disbursement as its own process, paying through the bank simulator (also its own process): one payment per
case whatever is redelivered or however the bank misbehaves, a closed account re-issued under the same payment
once the registry sends a corrected one, and a reconciliation that balances per district and day."""

import asyncio
import hashlib
import hmac
import secrets
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from disbursement.adapters.iso20022 import end_to_end_id, idempotency_key_of
from disbursement.bootstrap import MIGRATIONS
from disbursement.config import DisbursementSettings

from shared.contracts.envelope import Envelope
from shared.contracts.events import CaseDecided, PayeeAccountUpdated, TransferSettled
from shared.contracts.topics import CASE_DECIDED, REGISTRY_PAYEE, TRANSFER_SETTLED
from shared.messaging.kafka import KafkaProducer
from shared.security.crypto import FieldCipher, mask_account
from shared.testing import (
    ServiceProcess,
    ServiceUnderTest,
    free_port,
    read_topic,
    start_service,
    unique_prefix,
)

pytestmark = pytest.mark.integration
CHECKOUT = hashlib.sha256(str(Path(__file__).resolve()).encode()).hexdigest()[:8]
DISTRICT = "990600"
CALM = {"settle_delay_ms": 30}  # the simulator's default account suffix "0000" stays closed


@dataclass
class Disbursement(ServiceUnderTest):
    bank: str = ""

    async def payee(self, ref: str, account: str, version: int, name: str = "王芳") -> Envelope:
        """What eligibility publishes: the account and name only under the payee transport key."""
        cipher = FieldCipher.from_config(self.settings.payee_keys.get_secret_value(),
                                         active=self.settings.payee_active_key_id)
        plain = orjson.dumps({"account": account, "name": name, "bank": "Bank"}).decode()
        return await self.send(REGISTRY_PAYEE, PayeeAccountUpdated(
            account_version=version, payee_ciphertext=cipher.encrypt(plain, ref), account_masked=mask_account(account)),
            ref)

    async def payment(self, case_id: uuid.UUID, until: Callable[[dict[str, Any]], bool], timeout: float = 60
                      ) -> dict[str, Any]:
        """The case's payment (with its attempts) once `until` holds."""
        return await self.get_until(f"/v1/payments/by-case/{case_id}", until, timeout)  # type: ignore[no-any-return]

    async def outcomes(self, case_ids: set[uuid.UUID], expect: int, timeout: float = 60) -> list[TransferSettled]:
        """TransferSettled published for these cases, once at least `expect` are there."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            records = await read_topic(self.settings, TRANSFER_SETTLED, expect=1_000_000, timeout=1)
            found = [Envelope.from_bytes(r.value).payload() for r in records]
            mine = [t for t in found if isinstance(t, TransferSettled) and t.case_id in case_ids]
            if len(mine) >= expect:
                return mine
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"expected {expect} transfer outcomes, got {len(mine)}")

    async def transfers(self, case_id: uuid.UUID) -> list[dict[str, Any]]:
        """What the bank booked for a case (its remittance text names the case)."""
        async with httpx.AsyncClient(base_url=self.bank) as bank:
            response = await bank.get("/admin/transfers",
                                      params={"remittance_info": f"medical assistance case {case_id}"})
        return response.json()  # type: ignore[no-any-return]

    async def get_until_alarms(self, case_id: uuid.UUID, count: int, timeout: float = 30) -> list[dict[str, Any]]:
        deadline = asyncio.get_running_loop().time() + timeout
        while len(found := await self.alarms(case_id)) < count:
            assert asyncio.get_running_loop().time() < deadline, f"expected {count} alarms, got {found}"
            await asyncio.sleep(0.2)
        return found

    async def faults(self, **values: object) -> None:
        async with httpx.AsyncClient(base_url=self.bank) as bank:
            (await bank.put("/admin/faults", json={**CALM, **values})).raise_for_status()

    def iso(self) -> bool:
        return self.settings.bank_adapter == "iso20022"  # type: ignore[attr-defined,no-any-return]

    async def entries(self, case_id: uuid.UUID | None = None) -> list[dict[str, Any]]:
        """The bank's own statement lines (money out), for one case or all, keyed by our idempotency key (the
        ISO bank knows it as the EndToEndId)."""
        async with httpx.AsyncClient(base_url=self.bank) as bank:
            rows: list[dict[str, Any]] = (await bank.get("/admin/entries")).json()
        return [{**r, "idempotency_key": idempotency_key_of(r["idempotency_key"])} for r in rows
                if case_id is None or r["remittance_info"] == f"medical assistance case {case_id}"]

    async def book_by_hand(self, **entry: str) -> dict[str, Any]:
        if self.iso():
            entry["idempotency_key"] = end_to_end_id(entry["idempotency_key"])
        async with httpx.AsyncClient(base_url=self.bank) as bank:
            response = await bank.post("/admin/entries", json=entry)
        assert response.status_code == 201, response.text
        return response.json()  # type: ignore[no-any-return]

    async def reconcile(self) -> dict[str, Any]:
        """Statement reconciliation for today, on demand, as ops."""
        async with self.client("ops") as ops:
            response = await ops.post("/v1/reconciliation/statement")
        assert response.status_code == 200, response.text
        return response.json()  # type: ignore[no-any-return]

    async def alarms(self, case_id: uuid.UUID | None = None) -> list[dict[str, Any]]:
        async with self.client("ops") as ops:
            rows: list[dict[str, Any]] = (await ops.get("/v1/reconciliation/alarms", params={"limit": 1000})).json()
        return [r for r in rows if case_id is None or r["case_id"] == str(case_id)]

    async def callback(self, body: dict[str, Any]) -> None:
        """A callback signed with the bank's secret (a bank that errs, or a leaked secret)."""
        raw = orjson.dumps(body)
        secret = self.settings.bank_callback_secret.get_secret_value().encode()  # type: ignore[attr-defined]
        async with httpx.AsyncClient(base_url=self.url) as client:
            response = await client.post("/v1/bank/callbacks", content=raw, headers={
                "Content-Type": "application/json",
                "X-Bank-Signature": hmac.new(secret, raw, hashlib.sha256).hexdigest()})
        assert response.status_code == 202, response.text

    async def metric(self, name: str) -> float:
        async with httpx.AsyncClient(base_url=self.url) as client:
            text = (await client.get("/metrics")).text
        return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                   if line.startswith(name) and not line.startswith("#"))

    async def bank_stats(self) -> dict[str, Any]:
        async with httpx.AsyncClient(base_url=self.bank) as bank:
            return (await bank.get("/admin/stats")).json()  # type: ignore[no-any-return]


@asynccontextmanager
async def running(adapter: str = "rest", bank_db: str = "", env: dict[str, str] | None = None,
                  label: str | None = None) -> AsyncIterator[Disbursement]:
    """The bank simulator and disbursement (with this bank adapter, and `env` added to its settings) as processes
    on free ports; `label` names its database (default: the adapter's)."""
    bank_port, port = free_port(), free_port()
    # One database per checkout: several checkouts test on one PostgreSQL, and a sender of another checkout's
    # run must never claim this run's payments.
    checkout = CHECKOUT
    settings = DisbursementSettings(topic_prefix=unique_prefix("pay"),
                                    database_name=f"test_disbursement_{label or adapter}_{checkout}",
                                    bank_adapter=adapter)
    bank = ServiceProcess("simulators.bank", {"BANK_SIM_PORT": str(bank_port), "BANK_SIM_SETTLE_DELAY_MS": "30",
                                              "BANK_SIM_DB_PATH": bank_db}, bank_port).start()
    try:
        await bank.wait_ready()
        process = await start_service("disbursement", settings, MIGRATIONS, {
            "BANK_ADAPTER": adapter, "BANK_BASE_URL": bank.url, "CALLBACK_BASE_URL": f"http://127.0.0.1:{port}",
            "BANK_TIMEOUT_S": "0.5", "POLL_AFTER_S": "1", "RESEND_BACKOFF_S": "0.5", "SENDING_STALE_S": "8",
            "BANK_BACKOFF_INITIAL_S": "0.05", "BANK_BACKOFF_MAX_S": "0.2", **(env or {})}, port)
    except BaseException:
        bank.stop()
        raise
    producer = KafkaProducer(settings)
    try:
        await producer.start()
        yield Disbursement(settings, process.url, producer, bank=bank.url)
    finally:
        await producer.stop()
        process.stop()
        bank.stop()


@pytest.fixture(scope="module")
async def service() -> AsyncIterator[Disbursement]:
    async with running("rest") as started:
        yield started


@pytest.fixture(scope="module", params=["rest", "iso20022"])
async def either(request: pytest.FixtureRequest, service: Disbursement) -> AsyncIterator[Disbursement]:
    """Each adapter in turn: the REST one (the module's service) and the ISO 20022 one."""
    if request.param == "rest":
        yield service
        return
    async with running("iso20022") as started:
        yield started


def person() -> str:
    return secrets.token_hex(32)


def good_account() -> str:
    return f"622202020044{secrets.randbelow(9000) + 1000:04d}"  # never ends in 0000


def approved(amount: str, district: str = DISTRICT, on: date = date(2026, 3, 2)) -> CaseDecided:
    return CaseDecided(case_id=uuid.uuid4(), calculation_id=uuid.uuid4(), settlement_id=uuid.uuid4(),
                       decision="approved", amount=Decimal(amount), district_code=district,
                       subdistrict_code=f"{district}001", decided_at=datetime.combine(on, time(10, 0), UTC))


def cancelled(case: CaseDecided) -> CaseDecided:
    return case.model_copy(update={"decision": "cancelled", "reason_code": "settlement_reversed",
                                   "decided_at": datetime.now(UTC)})


def is_final(payment: dict[str, Any]) -> bool:
    return payment["status"] in ("settled", "failed", "cancelled")


async def holds(check: Callable[[], Awaitable[bool]], seconds: float) -> bool:
    """True when `check` stays true for `seconds` (for what must NOT happen)."""
    deadline = asyncio.get_running_loop().time() + seconds
    while asyncio.get_running_loop().time() < deadline:
        if not await check():
            return False
        await asyncio.sleep(0.2)
    return True


async def test_one_payment_per_case_when_the_approval_comes_twice_and_the_bank_misbehaves(
        service: Disbursement) -> None:
    await service.faults(error_rate=0.3, timeout_rate=0.3, timeout_sleep_ms=800, duplicate_callback_rate=1.0)
    try:
        before = await service.bank_stats()
        cases = []
        for amount in ("88.80", "1234.56", "0.01", "20000.00"):
            ref = person()
            await service.payee(ref, good_account(), 1)
            case = approved(amount)
            envelope = await service.send(CASE_DECIDED, case, ref)
            await service.resend(CASE_DECIDED, envelope)  # the same event delivered twice
            await service.send(CASE_DECIDED, case, ref)  # the same decision again under a new event id
            cases.append(case)
        payments = [await service.payment(c.case_id, is_final) for c in cases]
        stats = await service.bank_stats()
    finally:
        await service.faults()
    injected = ("errors_injected", "timeouts_injected")
    assert sum(stats.get(k, 0) for k in injected) > sum(before.get(k, 0) for k in injected), "the bank did misbehave"

    for case, payment in zip(cases, payments, strict=True):
        assert (payment["status"], payment["amount"], payment["attempt"]) == ("settled", f"{case.amount:.2f}", 1)
        assert payment["attempts"] == [{"attempt": 1, "idempotency_key": f"{payment['payment_id']}-1",
                                        "status": "settled", "reason": None,
                                        "bank_reference": payment["bank_reference"]}]
        booked = await service.transfers(case.case_id)
        assert [(t["idempotency_key"], t["amount"], t["status"]) for t in booked] == [
            (f"{payment['payment_id']}-1", f"{case.amount:.2f}", "settled")], "the bank booked the case once"
        assert payment["bank_reference"] == booked[0]["bank_reference"]

    async def callbacks_delivered() -> bool:
        return (await service.bank_stats())["callbacks_sent"] - before.get("callbacks_sent", 0) >= 2 * len(cases)

    deadline = asyncio.get_running_loop().time() + 30
    while not await callbacks_delivered():
        assert asyncio.get_running_loop().time() < deadline, "the bank sent every callback twice"
        await asyncio.sleep(0.2)
    case_ids = {c.case_id for c in cases}
    outcomes = await service.outcomes(case_ids, len(cases))
    assert await holds(lambda: _same_outcomes(service, case_ids, len(cases)), 2.5), "a second callback adds nothing"
    assert sorted((t.case_id, t.status, t.amount, t.attempt) for t in outcomes) == sorted(
        (c.case_id, "settled", c.amount, 1) for c in cases)


async def _same_outcomes(service: Disbursement, case_ids: set[uuid.UUID], count: int) -> bool:
    return len(await service.outcomes(case_ids, count)) == count


async def test_a_payment_waits_for_the_account_and_goes_out_when_it_arrives(service: Disbursement) -> None:
    ref, case = person(), approved("66.60")
    await service.send(CASE_DECIDED, case, ref)
    waiting = await service.payment(case.case_id, lambda p: True)
    assert (waiting["status"], waiting["attempts"][0]["status"]) == ("awaiting_account", "open")
    account = good_account()
    await service.payee(ref, account, 1)
    paid = await service.payment(case.case_id, is_final)
    assert (paid["payment_id"], paid["status"], paid["attempt"]) == (waiting["payment_id"], "settled", 1)
    [outcome] = await service.outcomes({case.case_id}, 1)
    assert (outcome.status, outcome.amount, str(outcome.payment_id)) == ("settled", Decimal("66.60"),
                                                                         paid["payment_id"])


async def test_a_closed_account_fails_with_its_reason_and_is_reissued_under_the_same_payment(
        service: Disbursement) -> None:
    ref, case = person(), approved("432.10")
    first = await service.payee(ref, "6222020200770000", 1)  # the simulator's closed accounts end in 0000
    await service.send(CASE_DECIDED, case, ref)
    failed = await service.payment(case.case_id, is_final)
    assert (failed["status"], failed["failure_reason"], failed["attempt"]) == ("failed", "account_closed", 1)
    [outcome] = await service.outcomes({case.case_id}, 1)
    assert (outcome.status, outcome.reason, outcome.attempt, outcome.amount) == (
        "failed", "account_closed", 1, Decimal("432.10"))

    await service.resend(REGISTRY_PAYEE, first)  # the same account again: re-sending cannot help
    await service.send(REGISTRY_PAYEE, first.payload(), ref)  # nor can the same version under a new event id

    async def still_failed() -> bool:
        payment = await service.payment(case.case_id, lambda p: True)
        return (payment["status"], payment["attempt"]) == ("failed", 1)

    assert await holds(still_failed, 2.0), "the same account version does not re-issue"

    corrected = good_account()
    await service.payee(ref, corrected, 2)
    reissued = await service.payment(case.case_id, lambda p: p["attempt"] == 2 and is_final(p))
    payment_id = failed["payment_id"]
    assert (reissued["payment_id"], reissued["status"], reissued["failure_reason"]) == (payment_id, "settled", None)
    assert [{k: a[k] for k in ("attempt", "idempotency_key", "status", "reason")} for a in reissued["attempts"]] == [
        {"attempt": 1, "idempotency_key": f"{payment_id}-1", "status": "failed", "reason": "account_closed"},
        {"attempt": 2, "idempotency_key": f"{payment_id}-2", "status": "settled", "reason": None}]
    booked = sorted(await service.transfers(case.case_id), key=lambda t: t["idempotency_key"])
    assert [(t["idempotency_key"], t["status"], t["reason"], t["amount"]) for t in booked] == [
        (f"{payment_id}-1", "failed", "account_closed", "432.10"), (f"{payment_id}-2", "settled", None, "432.10")]
    outcomes = await service.outcomes({case.case_id}, 2)
    assert [(str(t.payment_id), t.attempt, t.status, t.reason) for t in sorted(outcomes, key=lambda t: t.attempt)] == [
        (payment_id, 1, "failed", "account_closed"), (payment_id, 2, "settled", None)]


async def test_reconciliation_balances_per_district_and_day(service: Disbursement) -> None:
    district, neighbour = "990601", "990602"
    day1, day2 = date(2026, 3, 2), date(2026, 3, 3)
    plan = [  # (amount, district, day, account or None when the registry has none, cancelled afterwards)
        ("100.10", district, day1, good_account(), False), ("200.20", district, day1, good_account(), False),
        ("300.30", district, day1, good_account(), False), ("55.55", district, day1, "6222020200990000", False),
        ("44.44", district, day1, None, False), ("11.11", district, day1, None, True),
        ("10.01", district, day2, good_account(), False), ("20.02", district, day2, good_account(), False),
        ("99.99", neighbour, day1, good_account(), False),
    ]
    cases = []
    for amount, where, on, account, cancel in plan:
        ref, case = person(), approved(amount, where, on)
        if account:
            await service.payee(ref, account, 1)
        await service.send(CASE_DECIDED, case, ref)
        if cancel:
            await service.send(CASE_DECIDED, cancelled(case), ref)
        cases.append(case)
    expected_status = ["settled", "settled", "settled", "failed", "awaiting_account", "cancelled", "settled",
                       "settled", "settled"]
    for case, status in zip(cases, expected_status, strict=True):
        await service.payment(case.case_id, lambda p, s=status: p["status"] == s)  # type: ignore[misc]
    cancel_outcome = await service.outcomes({cases[5].case_id}, 1)
    assert [(t.status, t.amount) for t in cancel_outcome] == [("cancelled", Decimal("11.11"))]

    def figures(outcomes: list[tuple[str, str]]) -> dict[str, Any]:
        """What the reconciliation must say for (amount, payment status) pairs, added up here."""
        by_status: dict[str, list[Decimal]] = {"settled": [], "in_flight": [], "failed": [], "cancelled": []}
        for amount, status in outcomes:
            by_status["in_flight" if status == "awaiting_account" else status].append(Decimal(amount))
        every = [a for amounts in by_status.values() for a in amounts]
        return {k: {"count": len(v), "amount": f"{sum(v, Decimal(0)):.2f}"}
                for k, v in {"approved": every, **by_status}.items()}

    expected = {(where, on.isoformat()): figures([(p[0], s) for p, s in zip(plan, expected_status, strict=True)
                                                  if (p[1], p[2]) == (where, on)])
                for where, on in ((district, day1), (district, day2), (neighbour, day1))}
    assert expected[(district, "2026-03-02")]["approved"] == {"count": 6, "amount": "711.70"}
    assert expected[(district, "2026-03-02")]["settled"] == {"count": 3, "amount": "600.60"}
    assert expected[(district, "2026-03-02")]["in_flight"] == {"count": 1, "amount": "44.44"}

    async with service.client("ops") as ops, service.client("district_reviewer", district) as reviewer:
        report = (await ops.get("/v1/reconciliation", params={"district_code": district})).json()
        only_day1 = (await ops.get("/v1/reconciliation", params={"day": "2026-03-02"})).json()
        own = (await reviewer.get("/v1/reconciliation")).json()
        refused = await reviewer.get("/v1/reconciliation", params={"district_code": neighbour})
    assert refused.status_code == 403 and refused.json()["code"] == "forbidden_district"
    assert [(r["district_code"], r["day"]) for r in report] == [(district, "2026-03-02"), (district, "2026-03-03")]
    for row in report + [r for r in only_day1 if r["district_code"] in (district, neighbour)]:
        want = expected[(row["district_code"], row["day"])]
        assert {k: row[k] for k in want} == want, row
        parts = sum(Decimal(row[k]["amount"]) for k in ("settled", "in_flight", "failed", "cancelled"))
        assert Decimal(row["approved"]["amount"]) == parts and (row["difference"], row["alarm"]) == ("0.00", False)
    assert {r["district_code"] for r in only_day1} >= {district, neighbour}
    assert {r["day"] for r in only_day1} == {"2026-03-02"}
    assert {r["district_code"] for r in own} == {district}, "a reviewer sees their own district"


@pytest.mark.parametrize("body", [
    b'{"idempotency_key": "00000000-0000-0000-0000-000000000000-1", "status": "settled"}',
    b'{"idempotency_key": "\\u0000", "status": "whatever", "extra": [1, 2, 3]}',
    b"not json at all",
])
@pytest.mark.parametrize("signature", [None, "0" * 64, "é" * 64, "１" * 64, "0" * 5000])
async def test_callbacks_not_signed_by_the_bank_are_refused_before_reading_them(
        service: Disbursement, body: bytes, signature: str | None) -> None:
    # non-ASCII signatures arrive as the raw UTF-8 bytes a hostile client sends
    headers: dict[str, str | bytes] = {"Content-Type": "application/json",
                                       **({"X-Bank-Signature": signature.encode()} if signature else {})}
    async with httpx.AsyncClient(base_url=service.url) as client:
        response = await client.post("/v1/bank/callbacks", content=body, headers=headers)
    assert response.status_code == 401, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["code"] == "bad_signature"


# --- A bank whose messages are wrong: each misbehaviour, in both adapters, counted from the bank's own books ---


async def heard(service: Disbursement, case_id: uuid.UUID, until: Callable[[dict[str, Any]], bool],
                timeout: float = 60) -> dict[str, Any]:
    """The payment once `until` holds. The ISO 20022 bank sends no callbacks: its later word about a final
    attempt reaches us in its statement, so the ISO run reconciles (on demand) while it waits."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        if service.iso():
            await service.reconcile()
        payment = await service.payment(case_id, lambda p: True)
        if until(payment):
            return payment
        assert asyncio.get_running_loop().time() < deadline, payment
        await asyncio.sleep(0.5)


async def paid_cases(service: Disbursement, amounts: list[str], account: Callable[[], str] = good_account
                     ) -> list[tuple[str, CaseDecided]]:
    """Approved cases with accounts, sent to disbursement; (person_ref, case) each."""
    sent = []
    for amount in amounts:
        ref, case = person(), approved(amount)
        await service.payee(ref, account(), 1)
        await service.send(CASE_DECIDED, case, ref)
        sent.append((ref, case))
    return sent


async def test_a_signed_failure_callback_the_bank_does_not_confirm_changes_nothing(either: Disbursement) -> None:
    [(_, case)] = await paid_cases(either, ["345.67"])
    paid = await either.payment(case.case_id, is_final)
    assert paid["status"] == "settled"
    before = await either.metric("medassist_bank_callbacks_unconfirmed_total")
    # The bank: a correctly signed "failed, account_closed" for a key the bank holds as settled.
    await either.callback({"idempotency_key": f"{paid['payment_id']}-1", "status": "failed",
                           "reason": "account_closed"})
    deadline = asyncio.get_running_loop().time() + 30
    while await either.metric("medassist_bank_callbacks_unconfirmed_total") <= before:
        assert asyncio.get_running_loop().time() < deadline, "the unconfirmed callback is counted"
        await asyncio.sleep(0.2)
    after = await either.payment(case.case_id, lambda p: True)
    assert (after["status"], after["attempt"], after["failure_reason"]) == ("settled", 1, None)
    assert [(e["idempotency_key"], e["amount"]) for e in await either.entries(case.case_id)] == [
        (f"{paid['payment_id']}-1", "345.67")], "the bank booked it once"
    assert await either.alarms(case.case_id) == []


async def test_a_signed_batch_callback_is_checked_key_by_key_against_the_bank(service: Disbursement) -> None:
    """One callback naming two settled payments as failed and a third as settled: the bank's status (asked in
    one call) bears out only the third: the two are counted, and nothing changes."""
    cases = await paid_cases(service, ["11.10", "22.20", "33.30"])
    paid = [await service.payment(c.case_id, is_final) for _, c in cases]
    assert [p["status"] for p in paid] == ["settled"] * 3
    before = await service.metric("medassist_bank_callbacks_unconfirmed_total")
    await service.callback({"transfers": [
        {"idempotency_key": f"{paid[0]['payment_id']}-1", "status": "failed", "reason": "account_closed"},
        {"idempotency_key": f"{paid[1]['payment_id']}-1", "status": "failed", "reason": "name_mismatch"},
        {"idempotency_key": f"{paid[2]['payment_id']}-1", "status": "settled"}]})
    deadline = asyncio.get_running_loop().time() + 30
    while await service.metric("medassist_bank_callbacks_unconfirmed_total") < before + 2:
        assert asyncio.get_running_loop().time() < deadline, "both unconfirmed reports are counted"
        await asyncio.sleep(0.2)
    after = [await service.payment(c.case_id, lambda p: True) for _, c in cases]
    assert [(p["status"], p["attempt"], p["failure_reason"]) for p in after] == [("settled", 1, None)] * 3
    for _, case in cases:
        assert len(await service.entries(case.case_id)) == 1


async def test_false_failure_callbacks_from_the_bank_pay_each_case_once(service: Disbursement) -> None:
    await service.faults(false_failure_rate=1.0, duplicate_callback_rate=1.0)
    try:
        cases = await paid_cases(service, ["10.00", "20.00", "30.00"])
        payments = [await service.payment(c.case_id, is_final) for _, c in cases]
        stats = await service.bank_stats()
    finally:
        await service.faults()
    assert stats["false_failures_injected"] >= 3
    assert [p["status"] for p in payments] == ["settled"] * 3
    for _, case in cases:
        assert len(await service.entries(case.case_id)) == 1
    assert await service.metric("medassist_bank_callbacks_unconfirmed_total") >= 3


async def test_a_settlement_after_a_failure_report_is_heard(either: Disbursement) -> None:
    await either.faults(failure_then_settle_rate=1.0, late_settle_ms=2500)
    try:
        [(_, case)] = await paid_cases(either, ["77.70"])
        failed = await either.payment(case.case_id, lambda p: p["status"] == "failed")
        settled = await heard(either, case.case_id, lambda p: p["status"] == "settled")
    finally:
        await either.faults()
    assert (failed["failure_reason"], settled["failure_reason"], settled["attempt"]) == ("account_closed", None, 1)
    assert settled["attempts"][0]["status"] == "settled"
    outcomes = await either.outcomes({case.case_id}, 2)
    assert sorted(t.status for t in outcomes) == ["failed", "settled"]
    assert len(await either.entries(case.case_id)) == 1
    assert await either.alarms(case.case_id) == []


async def test_a_reissue_during_a_false_failure_is_a_double_payment_alarm_with_its_recovery(
        either: Disbursement) -> None:
    """The bank says attempt 1 failed, the registry corrects the account, attempt 2 settles, and then the bank
    pays attempt 1 after all: two transfers at the bank, found at once, with the money to recover."""
    await either.faults(failure_then_settle_rate=1.0, late_settle_ms=4000)
    try:
        [(ref, case)] = await paid_cases(either, ["250.00"])
        await either.payment(case.case_id, lambda p: p["status"] == "failed")
        await either.faults(failure_then_settle_rate=0.0)  # attempt 2 is paid normally
        await either.payee(ref, good_account(), 2)
        await either.payment(case.case_id, lambda p: p["attempt"] == 2 and p["status"] == "settled")
        paid = await heard(either, case.case_id, lambda p: [a["status"] for a in p["attempts"]] == [
            "settled", "settled"])
        [alarm] = await either.get_until_alarms(case.case_id, 1)
    finally:
        await either.faults()
    assert (alarm["kind"], alarm["recovery_amount"], alarm["amount"]) == ("double_payment", "250.00", "250.00")
    assert sorted(e["idempotency_key"] for e in await either.entries(case.case_id)) == [
        f"{paid['payment_id']}-1", f"{paid['payment_id']}-2"], "the statement shows both"
    report = await either.reconcile()
    assert "booked_twice" not in report["alarms"], "two keys, each booked once: the double payment alarm says it"


async def test_a_late_settlement_after_the_adapter_gave_up_and_a_reversal_is_recorded_and_recovered(
        either: Disbursement) -> None:
    """The bank answers only after the adapter's whole retry budget; the hospital reverses meanwhile. The
    cancellation waits for the bank; its late settlement is recorded as paid, with the alarm and recovery."""
    await either.faults(late_booking_rate=1.0, late_booking_ms=5000)
    try:
        [(ref, case)] = await paid_cases(either, ["14221.45"])
        stuck = await either.payment(case.case_id, lambda p: p["attempts"][0]["status"] == "unknown"
                                     and p["status"] == "pending")
        await either.send(CASE_DECIDED, cancelled(case), ref)
        waiting = await either.payment(case.case_id, lambda p: p["status"] != "pending")
        await either.faults(late_booking_rate=0.0, late_booking_ms=5000)
        paid = await either.payment(case.case_id, lambda p: p["status"] == "settled")
    finally:
        await either.faults()
    assert waiting["status"] == "cancelling", "not cancelled while the bank may hold the attempt"
    key = f"{stuck['payment_id']}-1"
    assert paid["attempts"][0]["status"] == "settled" and paid["bank_reference"]
    [alarm] = await either.get_until_alarms(case.case_id, 1)
    assert (alarm["kind"], alarm["recovery_amount"], alarm["idempotency_key"]) == (
        "paid_after_cancel", "14221.45", key)
    [outcome] = await either.outcomes({case.case_id}, 1)
    assert (outcome.status, outcome.amount) == ("settled", Decimal("14221.45")), "calculation opens the recovery"
    assert [(e["idempotency_key"], e["amount"]) for e in await either.entries(case.case_id)] == [
        (key, "14221.45")], "the statement agrees"
    report = await either.reconcile()
    assert not {"booked_not_settled", "unknown_transfer", "booked_twice"} & set(report["alarms"])


async def test_statement_reconciliation_finds_every_booking_written_into_the_banks_books(
        either: Disbursement) -> None:
    cases = await paid_cases(either, ["11.00", "22.00", "33.00", "44.00"])
    paid = [await either.payment(c.case_id, is_final) for _, c in cases]
    assert [p["status"] for p in paid] == ["settled"] * 4
    keys = [f"{p['payment_id']}-1" for p in paid]
    twice = await either.book_by_hand(idempotency_key=keys[0])  # the same transfer booked again
    wrong_amount = await either.book_by_hand(idempotency_key=keys[1], amount="220.00")
    wrong_account = await either.book_by_hand(idempotency_key=keys[2], creditor_account="6222029999990001")
    stranger = await either.book_by_hand(idempotency_key=f"{uuid.uuid4()}-1", amount="99.00",
                                         creditor_account="6222029999990002")
    await either.faults(duplicate_booking_rate=1.0)
    try:
        [(_, doubled)] = await paid_cases(either, ["55.00"])
        doubled_payment = await either.payment(doubled.case_id, is_final)
    finally:
        await either.faults()
    report = await either.reconcile()
    assert report["entries"] >= 11
    found = {(a["kind"], a["bank_reference"]) for a in await either.alarms()}
    doubled_refs = [e["entry_reference"] for e in await either.entries(doubled.case_id)]  # in booking order
    assert len(doubled_refs) == 2
    assert {("booked_twice", twice["entry_reference"]), ("amount_mismatch", wrong_amount["entry_reference"]),
            ("booked_twice", wrong_amount["entry_reference"]), ("account_mismatch", wrong_account["entry_reference"]),
            ("booked_twice", wrong_account["entry_reference"]), ("unknown_transfer", stranger["entry_reference"]),
            ("booked_twice", doubled_refs[1])} <= found
    assert ("booked_twice", doubled_refs[0]) not in found, "the first booking is the payment"
    assert doubled_payment["status"] == "settled"
    on_record = len(await either.alarms())
    await either.reconcile()
    assert len(await either.alarms()) == on_record, "a second run raises nothing new"
    for alarm in await either.alarms():
        if alarm["kind"] in ("booked_twice", "unknown_transfer"):
            assert alarm["recovery_amount"] == alarm["amount"]


async def test_a_callback_for_a_payment_waiting_for_its_account_holds_up_no_other(service: Disbursement) -> None:
    ref, waiting = person(), approved("12.34")
    await service.send(CASE_DECIDED, waiting, ref)
    parked = await service.payment(waiting.case_id, lambda p: p["status"] == "awaiting_account")
    await service.callback({"idempotency_key": f"{parked['payment_id']}-1", "status": "accepted"})
    await service.callback({"idempotency_key": f"{parked['payment_id']}-1", "status": "settled"})
    others = await paid_cases(service, ["1.00", "2.00", "3.00"])
    assert [(await service.payment(c.case_id, is_final, timeout=20))["status"] for _, c in others] == ["settled"] * 3
    still = await service.payment(waiting.case_id, lambda p: True)
    assert (still["status"], still["attempts"][0]["status"]) == ("awaiting_account", "open")


async def test_a_payment_falling_due_while_the_bank_holds_a_call_goes_in_a_call_of_its_own() -> None:
    """The sender does not wait for one batch's answers before it claims again: a payment approved while the bank
    still holds the call with another goes out in a second call, under way at the same time. Each is booked once."""
    async with running(env={"BANK_TIMEOUT_S": "60"}, label="overlap") as service:

        async def calls_held(count: int) -> None:
            deadline = asyncio.get_running_loop().time() + 30
            while (await service.bank_stats()).get("calls_held", 0) != count:
                assert asyncio.get_running_loop().time() < deadline, f"the bank never held {count} calls at once"
                await asyncio.sleep(0.1)

        cases = []
        await service.faults(hold_calls=True)
        try:
            for amount in ("10.00", "20.00"):
                ref, case = person(), approved(amount)
                await service.payee(ref, good_account(), 1)
                await service.send(CASE_DECIDED, case, ref)
                cases.append(case)
                await calls_held(len(cases))
        finally:
            await service.faults()
        for case in cases:
            payment = await service.payment(case.case_id, is_final)
            assert (payment["status"], payment["attempt"]) == ("settled", 1)
            booked = await service.transfers(case.case_id)
            assert [t["idempotency_key"] for t in booked] == [f"{payment['payment_id']}-1"], "booked once"
