"""Notification as its own process with the SMS gateway simulator (its own process too), on the real Kafka and
PostgreSQL: one SMS per moment and person whatever is redelivered, nothing lost while the gateway is down,
opt-outs honoured, and a status view that shows a resident their own settlements and nobody else's."""

import asyncio
import hashlib
import hmac
import json
import random
import secrets
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import httpx
import pytest
from notification.bootstrap import MIGRATIONS
from notification.config import NotificationSettings
from notification.domain.schedule import LOCAL_TIME
from simulators.hospital.feed import national_id

from shared.contracts.envelope import Envelope
from shared.contracts.events import (
    AssistanceCalculated,
    AssistanceFigures,
    AssistanceReversed,
    CaseDecided,
    ContactUpdated,
    EligibilityDecided,
    PayeeAccountUpdated,
    RecoveryOpened,
    SettlementReceived,
    TransferSettled,
)
from shared.contracts.topics import (
    ASSISTANCE_CALCULATED,
    CASE_DECIDED,
    ELIGIBILITY_DECIDED,
    REGISTRY_CONTACT,
    REGISTRY_PAYEE,
    TRANSFER_SETTLED,
)
from shared.messaging.kafka import KafkaProducer
from shared.security.crypto import FieldCipher, mask_account, mask_phone, person_ref
from shared.security.staff_auth import mint_dev_token
from shared.testing import ServiceProcess, ServiceUnderTest, free_port, start_service, unique_prefix

pytestmark = pytest.mark.integration
SUB = "310110001"
CALM = {"deliver_delay_ms": 20}


@dataclass
class Person:
    ref: str
    phone: str
    national_id: str | None = None


@dataclass
class Notification(ServiceUnderTest):
    sms: str = ""

    async def contact(self, who: Person, version: int = 1, opt_out: bool = False) -> Envelope:
        cipher = FieldCipher.from_config(self.settings.contact_keys.get_secret_value(),
                                         self.settings.contact_active_key_id)
        await self.send(REGISTRY_PAYEE, PayeeAccountUpdated(account_version=1, payee_ciphertext="p1:x",
                                                            account_masked=mask_account("6222020200441234")), who.ref)
        return await self.send(REGISTRY_CONTACT, ContactUpdated(
            contact_version=version, phone_ciphertext=cipher.encrypt(who.phone, who.ref),
            phone_masked=mask_phone(who.phone), sms_opt_out=opt_out), who.ref)

    async def journey(self, who: Person, assistance: str = "1234.56", sub: str = SUB, paid: bool = True,
                      screened: bool = True) -> tuple[uuid.UUID, list[tuple[str, Envelope]]]:
        """What the pipeline publishes for one settlement: decided, calculated, approved, (paid)."""
        sid, calc_id, case_id = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
        amount = Decimal(assistance)
        settlement = SettlementReceived(
            settlement_id=sid, hospital_id="H001", hospital_settlement_id=f"N-{sid.hex[:8]}", hospital_level=2,
            visit_type="inpatient", admission_date=date(2026, 2, 20), discharge_date=date(2026, 3, 2),
            total_amount=Decimal("9000.00"), policy_scope_amount=Decimal("8000.00"),
            basic_insurance_paid=Decimal("5000.00"), critical_illness_paid=Decimal("1000.00"))
        sent: list[tuple[str, Envelope]] = []
        if screened:  # else the calculation is the first the service hears of it
            sent.append((ELIGIBILITY_DECIDED, await self.send(ELIGIBILITY_DECIDED, EligibilityDecided(
                settlement=settlement, eligible=True, reason="eligible", category="subsistence",
                district_code=sub[:6], subdistrict_code=sub), who.ref)))
        zero, cap = Decimal("0.00"), Decimal("40000.00")
        figures = AssistanceFigures(
            policy_scope_amount=Decimal("8000.00"), basic_insurance_paid=Decimal("5000.00"),
            critical_illness_paid=Decimal("1000.00"), base=Decimal("2000.00"), deductible=zero,
            deductible_used_before=zero, deductible_left=zero, deductible_applied=zero, ratio=Decimal("0.8"),
            amount_before_caps=amount, per_settlement_cap=None, amount_after_settlement_cap=amount, cap=cap,
            committed_before=zero, cap_left=cap, assistance=amount)
        sent.append((ASSISTANCE_CALCULATED, await self.send(ASSISTANCE_CALCULATED, AssistanceCalculated(
            calculation_id=calc_id, settlement_id=sid, hospital_id="H001", category="subsistence",
            district_code=sub[:6], subdistrict_code=sub, visit_type="inpatient", hospital_level=2,
            discharge_date=date(2026, 3, 2), year=2026, policy_id="p", policy_version=1, figures=figures),
            who.ref)))
        sent.append((CASE_DECIDED, await self.send(CASE_DECIDED, CaseDecided(
            case_id=case_id, calculation_id=calc_id, settlement_id=sid, decision="approved", amount=amount,
            district_code=sub[:6], subdistrict_code=sub, decided_at=datetime.now(UTC)), who.ref)))
        if paid:
            sent.append((TRANSFER_SETTLED, await self.send(TRANSFER_SETTLED, TransferSettled(
                payment_id=uuid.uuid4(), case_id=case_id, calculation_id=calc_id, settlement_id=sid,
                status="settled", amount=amount, bank_reference="BK1"), who.ref)))
        return sid, sent

    async def received(self, phone: str) -> list[dict[str, Any]]:
        async with httpx.AsyncClient(base_url=self.sms) as sms:
            return [m for m in (await sms.get("/admin/messages")).json() if m["to"] == phone]

    async def received_at_least(self, phone: str, count: int, timeout: float = 60) -> list[dict[str, Any]]:
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            got = await self.received(phone)
            if len(got) >= count:
                return got
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"expected {count} SMS, the gateway has {len(got)}")
            await asyncio.sleep(0.3)

    async def faults(self, **values: object) -> None:
        async with httpx.AsyncClient(base_url=self.sms) as sms:
            (await sms.put("/admin/faults", json={**CALM, **values})).raise_for_status()

    async def stats(self) -> dict[str, Any]:
        async with httpx.AsyncClient(base_url=self.sms) as sms:
            return (await sms.get("/admin/stats")).json()  # type: ignore[no-any-return]

    async def messages(self, ref: str) -> list[dict[str, Any]]:
        async with self.client("ops") as ops:
            return (await ops.get("/v1/messages", params={"person_ref": ref})).json()  # type: ignore[no-any-return]

    def resident(self, ref: str) -> httpx.AsyncClient:
        token = mint_dev_token(self.settings.jwt_secret.get_secret_value(), ref, "resident")
        return httpx.AsyncClient(base_url=self.url, headers={"Authorization": f"Bearer {token}"}, timeout=30)


@pytest.fixture(scope="module")
async def service() -> AsyncIterator[Notification]:
    sms_port, port = free_port(), free_port()
    settings = NotificationSettings(topic_prefix=unique_prefix("note"), database_name="test_notification")
    sms = ServiceProcess("simulators.sms", {"SMS_SIM_PORT": str(sms_port), "SMS_SIM_DELIVER_DELAY_MS": "20"},
                         sms_port).start()
    try:
        await sms.wait_ready()
        process = await start_service("notification", settings, MIGRATIONS, {
            "SMS_BASE_URL": sms.url, "SMS_CALLBACK_BASE_URL": f"http://127.0.0.1:{port}", "SMS_QUIET_HOURS": "off",
            "SMS_TIMEOUT_S": "0.5", "SMS_RESEND_BACKOFF_S": "0.5", "SMS_BACKOFF_INITIAL_S": "0.05",
            "SMS_BACKOFF_MAX_S": "0.2"}, port)
    except BaseException:
        sms.stop()
        raise
    producer = KafkaProducer(settings)
    try:
        await producer.start()
        yield Notification(settings, process.url, producer, sms=sms.url)
    finally:
        await producer.stop()
        log = process.log_path
        process.stop()
        sms.stop()
        service_log = log.read_bytes()
        assert b"1380013" not in service_log, "a phone number reached the service's log"
        assert b"isolating the failing events" not in service_log, "a batch failed and was applied event by event"


def someone(national_id: str | None = None) -> Person:
    phone = f"1380013{secrets.randbelow(9000) + 1000:04d}"  # never ends in 0000 (switched off at the gateway)
    ref = person_ref(b"dev-pepper-change-me", national_id) if national_id else secrets.token_hex(32)
    return Person(ref, phone, national_id)


async def holds(check: Callable[[], Awaitable[bool]], seconds: float) -> bool:
    """True when `check` stays true for `seconds` (for what must NOT happen)."""
    deadline = asyncio.get_running_loop().time() + seconds
    while asyncio.get_running_loop().time() < deadline:
        if not await check():
            return False
        await asyncio.sleep(0.3)
    return True


async def test_each_moment_is_one_sms_in_order_and_redelivery_sends_none(service: Notification) -> None:
    who = someone()
    await service.contact(who)
    _, sent = await service.journey(who)
    got = await service.received_at_least(who.phone, 3)
    assert [m["text"] for m in got] == [
        "【医疗救助】您2026年3月2日在复旦大学附属中山医院的医疗费用，经核算可获医疗救助1,234.56 元，"
        "正在审核，无需申请、无需跑腿。",
        "【医疗救助】您的医疗救助1,234.56 元已审核通过，将直接转入您的银行账户。",
        f"【医疗救助】医疗救助1,234.56 元已于{datetime.now(LOCAL_TIME).date():%Y年%-m月%-d日}转入您尾号****1234"
        "的银行账户，请查收。",
    ]
    for topic, envelope in sent:  # Kafka delivers everything again, as after a crash
        await service.resend(topic, envelope)
        await service.resend(topic, envelope)
    _, barrier = await service.journey(who, assistance="10.00", paid=False)  # later on the same partitions
    await service.received_at_least(who.phone, 5)

    async def still_five() -> bool:
        return len(await service.received(who.phone)) == 5

    assert await holds(still_five, 3), "a redelivered event sent a second SMS"
    messages = await service.messages(who.ref)
    assert len(messages) == 5 and len({m["message_id"] for m in messages}) == 5

    async def delivered() -> bool:
        return all(m["status"] == "delivered" for m in await service.messages(who.ref))

    for _ in range(100):  # delivery reports come back from the gateway
        if await delivered():
            break
        await asyncio.sleep(0.2)
    assert await delivered()
    stats = await service.stats()
    assert stats["report_batches_sent"] >= 1 and stats["reports_sent"] >= 5, "the gateway reports in batches"


async def test_the_gateway_down_for_a_while_loses_no_message_and_sends_none_twice(service: Notification) -> None:
    people = [someone() for _ in range(4)]
    for who in people:
        await service.contact(who)
    await service.faults(error_rate=1.0)
    try:
        for who in people:
            await service.journey(who)

        async def all_waiting() -> bool:
            rows = [m for who in people for m in await service.messages(who.ref)]
            return len(rows) == 12 and all(m["status"] in ("pending", "sending") for m in rows) and any(
                m["attempts"] >= 1 for m in rows)

        for _ in range(100):
            if await all_waiting():
                break
            await asyncio.sleep(0.2)
        assert await all_waiting(), "messages written and waiting while the gateway refuses everything"
        assert all([await service.received(who.phone) == [] for who in people])
        # Back, but slow: some answers come after the adapter gave up; the same key is sent again.
        await service.faults(error_rate=0.2, timeout_rate=0.3, timeout_sleep_ms=800)
        for who in people:
            await service.received_at_least(who.phone, 3, timeout=90)
    finally:
        await service.faults()
    stats = await service.stats()
    for who in people:
        texts = [m["text"] for m in await service.received(who.phone)]
        assert len(texts) == 3 and len(set(texts)) == 3, texts
    assert stats["errors_injected"] > 0
    print(f"\ngateway down then flaky: errors={stats['errors_injected']} timeouts={stats.get('timeouts_injected', 0)} "
          f"duplicates_absorbed={stats.get('duplicates_absorbed', 0)}")


async def test_an_opt_out_is_honoured_from_the_moment_it_is_known(service: Notification) -> None:
    quiet, changes_mind = someone(), someone()
    await service.contact(quiet, opt_out=True)
    await service.contact(changes_mind)
    await service.journey(quiet)
    await service.journey(changes_mind, paid=False)
    await service.received_at_least(changes_mind.phone, 2)
    await service.contact(changes_mind, version=2, opt_out=True)
    await service.contact(changes_mind, version=1, opt_out=False)  # an older version arriving late loses
    await asyncio.sleep(1)
    _, later = await service.journey(changes_mind, paid=False)

    async def written(ref: str, count: int) -> list[dict[str, Any]]:
        for _ in range(100):
            rows = await service.messages(ref)
            if len(rows) >= count:
                return rows
            await asyncio.sleep(0.2)
        raise AssertionError(f"expected {count} messages written for {ref}")

    assert {m["status"] for m in await written(quiet.ref, 3)} == {"suppressed"}
    rows = await written(changes_mind.ref, 4)
    assert [m["status"] for m in rows[2:]] == ["suppressed", "suppressed"]

    async def nothing_for_them() -> bool:
        return await service.received(quiet.phone) == [] and len(await service.received(changes_mind.phone)) == 2

    assert await holds(nothing_for_them, 2)
    async with service.resident(quiet.ref) as me:
        assert (await me.get("/v1/me/settlements", params={"year": 2026})).json()["sms"] == "opted_out"


async def test_a_resident_sees_their_own_settlements_and_a_clerk_only_their_sub_district(
        service: Notification) -> None:
    rng = random.Random(13)
    me, neighbour = someone(national_id(rng)), someone(national_id(rng))
    for who in (me, neighbour):
        await service.contact(who)
    mine, _ = await service.journey(me)
    theirs, _ = await service.journey(neighbour, assistance="99.00", sub="310110002")
    await service.received_at_least(me.phone, 3)
    await service.received_at_least(neighbour.phone, 3)
    async with service.resident(me.ref) as http:
        status = (await http.get("/v1/me/settlements", params={"year": 2026})).json()
        empty = (await http.get("/v1/me/settlements", params={"year": 2025})).json()
    assert [s["settlement_id"] for s in status["settlements"]] == [str(mine)]
    [row] = status["settlements"]
    assert row["decision"] == {"eligible": True, "reason": "eligible", "text": "符合医疗救助条件"}
    assert (row["hospital"], row["assistance"]) == ("复旦大学附属中山医院", "1234.56")
    assert row["review"]["state"] == "approved"
    assert row["payment"]["status"] == "settled" and row["payment"]["account"] == "****1234"
    assert status["phone"] == mask_phone(me.phone) and me.phone not in str(status)
    assert [m["moment"] for m in status["messages"]] == ["assistance_calculated", "case_approved", "transfer_settled"]
    assert empty["settlements"] == [] and empty["messages"] == []
    assert str(theirs) not in str(status)
    clerk, other_clerk = service.client("clerk", "310110", SUB), service.client("clerk", "310110", "310110002")
    async with clerk, other_clerk, service.client("ops") as ops, service.client("registry_officer") as officer:
        shown = (await clerk.post("/v1/residents:lookup", json={"national_id": me.national_id, "year": 2026}))
        assert shown.status_code == 200 and shown.json()["settlements"] == status["settlements"]
        elsewhere = await clerk.post("/v1/residents:lookup", json={"national_id": neighbour.national_id})
        assert elsewhere.status_code == 404 and elsewhere.json()["code"] == "resident_not_found"
        assert (await other_clerk.post("/v1/residents:lookup", json={"national_id": me.national_id})
                ).status_code == 404
        for staff in (ops, officer, clerk):
            refused = await staff.get("/v1/me/settlements")
            assert refused.status_code == 403 and refused.json()["code"] == "forbidden_role"
    async with service.resident(me.ref) as http:
        assert (await http.post("/v1/residents:lookup", json={"national_id": me.national_id})).status_code == 403
        assert (await http.get("/v1/messages")).status_code == 403
    not_a_ref = mint_dev_token(service.settings.jwt_secret.get_secret_value(), "resident-x", "resident")
    async with httpx.AsyncClient(base_url=service.url, headers={"Authorization": f"Bearer {not_a_ref}"}) as bad:
        assert (await bad.get("/v1/me/settlements")).json()["code"] == "token_invalid"


async def test_a_reversal_after_payment_tells_the_person_how_the_recovery_goes(service: Notification) -> None:
    who = someone()
    await service.contact(who)
    sid, sent = await service.journey(who, assistance="20000.00")
    calc_id = next(e.data["calculation_id"] for t, e in sent if t == ASSISTANCE_CALCULATED)
    await service.received_at_least(who.phone, 3)
    recovery_id = uuid.uuid4()
    await service.send(ASSISTANCE_CALCULATED, AssistanceReversed(
        calculation_id=calc_id, settlement_id=sid, released_assistance=Decimal("0.00"), recovery_id=recovery_id),
        who.ref)
    await service.send(ASSISTANCE_CALCULATED, RecoveryOpened(
        recovery_id=recovery_id, calculation_id=calc_id, settlement_id=sid, district_code="310110",
        amount=Decimal("20000.00"), opened_at=datetime.now(UTC)), who.ref)
    got = await service.received_at_least(who.phone, 4)
    assert got[-1]["text"].startswith(
        "【医疗救助】医院已撤销您2026年3月2日的医疗费用结算，已发放的医疗救助20,000.00 元需要退回。")
    async with service.resident(who.ref) as me:
        [row] = (await me.get("/v1/me/settlements", params={"year": 2026})).json()["settlements"]
    assert row["reversed"] and row["recovery"]


async def test_delivery_reports_must_be_signed(service: Notification) -> None:
    async with httpx.AsyncClient(base_url=service.url) as anyone:
        forged = await anyone.post("/v1/sms/delivery-reports", json={
            "idempotency_key": str(uuid.uuid4()), "status": "delivered"}, headers={"X-Sms-Signature": "00"})
    assert forged.status_code == 401 and forged.json()["code"] == "bad_signature"
    async with httpx.AsyncClient(base_url=service.url) as anyone:
        garbled = await anyone.post("/v1/sms/delivery-reports", content=b'{"reports": [',
                                    headers={"Content-Type": "application/json", "X-Sms-Signature": "00"})
    assert garbled.status_code == 401, "the signature is checked before the body is read"


async def test_the_gateways_reports_come_one_or_many_to_a_callback(service: Notification) -> None:
    secret = service.settings.sms_callback_secret.get_secret_value().encode()

    async def post(body: object) -> httpx.Response:
        raw = json.dumps(body).encode()
        async with httpx.AsyncClient(base_url=service.url) as gateway:
            return await gateway.post("/v1/sms/delivery-reports", content=raw, headers={
                "Content-Type": "application/json",
                "X-Sms-Signature": hmac.new(secret, raw, hashlib.sha256).hexdigest()})

    def unknown(status: str = "delivered") -> dict[str, object]:
        return {"idempotency_key": str(uuid.uuid4()), "message_id": "SM1", "status": status}

    one = await post(unknown())
    assert (one.status_code, one.json()) == (202, {"status": "received", "moved": 0}), "an unknown message: no move"
    many = await post({"reports": [unknown(), {**unknown("undeliverable"), "reason": "switched_off"}]})
    assert (many.status_code, many.json()) == (202, {"status": "received", "moved": 0})
    bad = await post({"reports": [unknown(), {**unknown(), "status": "lost"}]})
    assert bad.status_code == 422 and bad.json()["code"] == "invalid_input", "one bad report refuses the batch"
    assert (await post({"reports": []})).status_code == 422


async def test_a_transfers_message_names_the_account_it_went_to_not_a_later_correction(
        service: Notification) -> None:
    who = someone()
    await service.contact(who)  # account version 1, ending 1234
    sid, _ = await service.journey(who, assistance="300.00", paid=False)
    payment = uuid.uuid4()
    # The registry's correction reaches notification before the bank's failure of the first attempt does.
    await service.send(REGISTRY_PAYEE, PayeeAccountUpdated(account_version=2, payee_ciphertext="p2:x",
                                                           account_masked=mask_account("6222020200447777")), who.ref)
    for attempt, status, version in [(1, "failed", 1), (2, "settled", 2)]:
        await service.send(TRANSFER_SETTLED, TransferSettled(
            payment_id=payment, case_id=uuid.uuid4(), calculation_id=uuid.uuid4(), settlement_id=sid,
            status=status, reason="account_closed" if status == "failed" else None,
            amount=Decimal("300.00"), attempt=attempt, account_version=version), who.ref)
    got = [m["text"] for m in await service.received_at_least(who.phone, 4)]
    assert "尾号****1234的银行账户未成功" in got[2], got
    assert "转入您尾号****7777的银行账户，请查收" in got[3], got


async def test_a_calculation_heard_before_its_screening_still_says_where_and_when(service: Notification) -> None:
    who = someone()
    await service.contact(who)
    await service.journey(who, assistance="88.00", paid=False, screened=False)
    [calculated, _] = await service.received_at_least(who.phone, 2)
    assert calculated["text"].startswith("【医疗救助】您2026年3月2日在复旦大学附属中山医院的医疗费用"), calculated
