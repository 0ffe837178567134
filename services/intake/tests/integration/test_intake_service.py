"""Intake as its own process against the real Kafka and PostgreSQL."""

import asyncio
import random
import time
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx
import orjson
import pytest
from intake.bootstrap import MIGRATIONS
from intake.config import IntakeSettings
from simulators.hospital.client import IntakeClient
from simulators.hospital.feed import Patient, bad_records, national_id, person_name, settlement
from sqlalchemy import text

from shared.contracts.envelope import Envelope
from shared.contracts.events import (
    AssistanceCalculated,
    AssistanceFigures,
    CaseDecided,
    EligibilityDecided,
    EventData,
    SettlementReceived,
    TransferSettled,
)
from shared.contracts.topics import (
    ASSISTANCE_CALCULATED,
    CASE_DECIDED,
    ELIGIBILITY_DECIDED,
    SETTLEMENT_RECEIVED,
    TRANSFER_SETTLED,
)
from shared.db import Database
from shared.messaging.kafka import KafkaProducer
from shared.security.hospital_signing import signed_headers
from shared.testing import ServiceProcess, read_topic, start_service, unique_prefix

pytestmark = pytest.mark.integration
rng = random.Random(7)
PATIENT = Patient(national_id(rng), person_name(rng))


@pytest.fixture(scope="module")
async def intake() -> AsyncIterator[tuple[IntakeSettings, ServiceProcess]]:
    settings = IntakeSettings(topic_prefix=unique_prefix("intake"), database_name="test_intake")
    process = await start_service("intake", settings, MIGRATIONS)
    try:
        yield settings, process
    finally:
        process.stop()


@pytest.fixture
async def h001(intake) -> AsyncIterator[IntakeClient]:  # type: ignore[no-untyped-def]
    client = IntakeClient(intake[1].url, "H001", "dev-secret-H001")
    yield client
    await client.aclose()


@pytest.fixture
async def h002(intake) -> AsyncIterator[IntakeClient]:  # type: ignore[no-untyped-def]
    client = IntakeClient(intake[1].url, "H002", "dev-secret-H002")
    yield client
    await client.aclose()


async def test_accepts_a_settlement_once_and_publishes_it_without_personal_data(intake, h001) -> None:
    settings, _ = intake
    body = settlement(rng, PATIENT, "S-ONE")
    first = await h001.push(body)
    assert first.status_code == 202, first.text
    assert first.json()["outcome"] == "created"
    await asyncio.sleep(1.1)  # a retry is signed anew; within the same second it would be a replay
    again = await h001.push(body)
    assert again.json() == {**first.json(), "outcome": "duplicate"}
    records = await read_topic(settings, SETTLEMENT_RECEIVED, expect=1)
    mine = [r for r in records if b"S-ONE" in r.value]
    assert len(mine) == 1, "a retried push publishes nothing new"
    envelope = Envelope.from_bytes(mine[0].value)
    assert isinstance(envelope.payload(), SettlementReceived)
    assert mine[0].key.decode() == envelope.person_ref
    raw = mine[0].value + b"".join(v for _, v in mine[0].headers)
    assert PATIENT.national_id.encode() not in raw and PATIENT.name.encode() not in raw


async def test_same_id_with_a_different_body_is_a_conflict(h001) -> None:
    body = settlement(rng, PATIENT, "S-CONFLICT")
    assert (await h001.push(body)).status_code == 202
    response = await h001.push({**body, "total_amount": "1.00", "policy_scope_amount": "1.00",
                                "basic_insurance_paid": "0.00", "critical_illness_paid": "0.00"})
    assert response.status_code == 409
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "conflicting_duplicate"


async def test_a_batch_with_one_bad_record_is_refused_whole(h001) -> None:
    good = [settlement(rng, PATIENT, f"S-B{i}") for i in range(3)]
    for why, bad in bad_records(rng, PATIENT):
        response = await h001.push_batch([*good, bad])
        assert response.status_code == 422, why
        problem = response.json()
        assert problem["code"] == "invalid_input"
        assert {e["index"] for e in problem["errors"]} == {3}, why
        assert problem["field"].startswith("items.3"), why
        assert PATIENT.national_id not in response.text
    for item in good:
        assert (await h001.status(item["hospital_settlement_id"])).status_code == 404, "nothing half-written"
    accepted = await h001.push_batch(good)
    assert accepted.status_code == 202 and accepted.json()["created"] == 3


@pytest.mark.parametrize("tamper", ["no_signature", "bad_signature", "stale", "unknown_hospital", "body_swapped",
                                    "non_ascii_signature", "non_ascii_timestamp", "huge_timestamp",
                                    "arabic_indic_timestamp", "signature_of_wrong_length"])
async def test_unsigned_or_tampered_requests_are_refused_and_store_nothing(intake, tamper: str) -> None:
    import httpx

    _, process = intake
    body = settlement(rng, PATIENT, f"S-T-{tamper}")
    content = orjson.dumps(body)
    headers = signed_headers("H001", "dev-secret-H001", "POST", "/v1/settlements", content)
    if tamper == "no_signature":
        headers = {}
    elif tamper == "bad_signature":
        headers["X-Signature"] = "0" * 64
    elif tamper == "stale":
        headers = signed_headers("H001", "dev-secret-H001", "POST", "/v1/settlements", content,
                                 now=int(time.time()) - 3600)
    elif tamper == "unknown_hospital":
        headers = signed_headers("H999", "whatever", "POST", "/v1/settlements", content)
    elif tamper == "body_swapped":
        content = orjson.dumps({**body, "total_amount": "99999.00"})
    elif tamper == "non_ascii_signature":
        headers["X-Signature"] = ("é" * 64).encode()  # type: ignore[assignment]
    elif tamper == "non_ascii_timestamp":
        headers["X-Timestamp"] = "１７".encode()  # type: ignore[assignment]
    elif tamper == "huge_timestamp":
        headers["X-Timestamp"] = "9" * 5000
    elif tamper == "arabic_indic_timestamp":
        headers["X-Timestamp"] = "".join(chr(0x0660 + int(d)) for d in str(int(time.time()))).encode()  # type: ignore[assignment]
    elif tamper == "signature_of_wrong_length":
        headers["X-Signature"] = headers["X-Signature"][:-1]
    async with httpx.AsyncClient(base_url=process.url) as http:
        response = await http.post("/v1/settlements", content=content,
                                   headers={"Content-Type": "application/json", **headers})
    assert response.status_code == 401, response.text
    assert response.headers["content-type"] == "application/problem+json"
    client = IntakeClient(process.url, "H001", "dev-secret-H001")
    assert (await client.status(f"S-T-{tamper}")).status_code == 404
    await client.aclose()


async def test_a_replayed_request_is_refused(intake) -> None:
    import httpx

    _, process = intake
    content = orjson.dumps(settlement(rng, PATIENT, "S-REPLAY"))
    headers = {"Content-Type": "application/json",
               **signed_headers("H001", "dev-secret-H001", "POST", "/v1/settlements", content)}
    async with httpx.AsyncClient(base_url=process.url) as http:
        assert (await http.post("/v1/settlements", content=content, headers=headers)).status_code == 202
        replay = await http.post("/v1/settlements", content=content, headers=headers)
    assert replay.status_code == 401 and replay.json()["code"] == "replayed_request"


async def test_a_hospital_sees_only_its_own_settlements(h001, h002) -> None:
    assert (await h001.push(settlement(rng, PATIENT, "S-MINE"))).status_code == 202
    assert (await h002.status("S-MINE")).status_code == 404
    assert (await h002.reverse("S-MINE")).status_code == 404
    assert (await h001.status("S-MINE")).status_code == 200


async def test_status_follows_downstream_events_and_reversal_is_published(intake, h001) -> None:
    settings, _ = intake
    accepted = (await h001.push(settlement(rng, PATIENT, "S-JOURNEY"))).json()
    records = await read_topic(settings, SETTLEMENT_RECEIVED, expect=50, timeout=5)
    received = next(Envelope.from_bytes(r.value) for r in records if b"S-JOURNEY" in r.value)
    decided = EligibilityDecided(settlement=received.payload(), eligible=False, reason="no_consent")
    producer = KafkaProducer(settings)
    await producer.start()
    await producer.send_and_wait(settings.topic(ELIGIBILITY_DECIDED),
                                 Envelope.wrap(decided, person_ref=received.person_ref, producer="test").to_bytes(),
                                 key=received.person_ref)
    await producer.stop()
    for _ in range(60):
        status = (await h001.status("S-JOURNEY")).json()
        if status["status"] == "parked":
            break
        await asyncio.sleep(0.25)
    assert status["status"] == "parked" and status["reason"] == "no_consent"
    assert [j["status"] for j in status["journey"]] == ["received", "parked"]
    reversed_ = await h001.reverse("S-JOURNEY", "voided_at_hospital")
    assert reversed_.status_code == 200 and reversed_.json()["status"] == "reversed"
    await asyncio.sleep(1.1)
    assert (await h001.reverse("S-JOURNEY")).status_code == 200, "a repeated reversal is a no-op"
    records = await read_topic(settings, SETTLEMENT_RECEIVED, expect=100, timeout=5)
    reversals = [Envelope.from_bytes(r.value) for r in records if b"SettlementReversed" in r.value]
    assert [e.payload().settlement_id for e in reversals].count(
        __import__("uuid").UUID(accepted["settlement_id"])) == 1


async def _wait_status(client: IntakeClient, hid: str, until: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    for _ in range(240):
        status = (await client.status(hid)).json()
        if until(status):
            return status  # type: ignore[no-any-return]
        await asyncio.sleep(0.25)
    raise AssertionError(f"{hid}: {status}")


def _calculated(s: SettlementReceived, assistance: str) -> AssistanceCalculated:
    money, zero = Decimal(assistance), Decimal("0.00")
    return AssistanceCalculated(
        calculation_id=uuid.uuid4(), settlement_id=s.settlement_id, hospital_id=s.hospital_id,
        category="subsistence", district_code="310110", subdistrict_code="310110001", visit_type=s.visit_type,
        hospital_level=s.hospital_level, discharge_date=s.discharge_date, year=s.discharge_date.year,
        policy_id="yangpu-310110", policy_version=1, figures=AssistanceFigures(
            policy_scope_amount=s.policy_scope_amount, basic_insurance_paid=s.basic_insurance_paid,
            critical_illness_paid=s.critical_illness_paid, base=money, deductible=zero, deductible_used_before=zero,
            deductible_left=zero, deductible_applied=zero, ratio=Decimal("1.00"), amount_before_caps=money,
            per_settlement_cap=None, amount_after_settlement_cap=money, cap=Decimal("60000.00"),
            committed_before=zero, cap_left=Decimal("60000.00"), assistance=money))


async def test_the_eligibility_reason_outlives_the_later_steps(intake, h001) -> None:  # type: ignore[no-untyped-def]
    settings, _ = intake
    for hid in ("S-REASON", "S-REASON-LATE"):
        assert (await h001.push(settlement(rng, PATIENT, hid))).status_code == 202
    records = await read_topic(settings, SETTLEMENT_RECEIVED, expect=1_000_000, timeout=3)
    received = {e.payload().hospital_settlement_id: e for e in (Envelope.from_bytes(r.value) for r in records)  # type: ignore[attr-defined]
                if e.event_type == "SettlementReceived" and e.data["hospital_settlement_id"].startswith("S-REASON")}
    s, late = received["S-REASON"].payload(), received["S-REASON-LATE"].payload()
    assert isinstance(s, SettlementReceived) and isinstance(late, SettlementReceived)
    ref = received["S-REASON"].person_ref
    producer = KafkaProducer(settings)
    await producer.start()

    async def send(topic: str, data: EventData) -> None:
        await producer.send_and_wait(settings.topic(topic), Envelope.wrap(data, person_ref=ref,
                                                                          producer="test").to_bytes(), key=ref)

    try:
        await send(ELIGIBILITY_DECIDED, EligibilityDecided(settlement=s, eligible=False, reason="no_consent"))
        parked = await _wait_status(h001, "S-REASON", lambda x: x["status"] == "parked")
        assert (parked["reason"], parked["eligibility_reason"]) == ("no_consent", "no_consent")
        await send(ELIGIBILITY_DECIDED, EligibilityDecided(settlement=s, eligible=True, reason="eligible",
                                                           category="subsistence", district_code="310110",
                                                           subdistrict_code="310110001", rescreened=True))
        calc = _calculated(s, "640.00")
        await send(ASSISTANCE_CALCULATED, calc)
        calculated = await _wait_status(h001, "S-REASON", lambda x: x["status"] == "calculated")
        assert (calculated["reason"], calculated["eligibility_reason"], calculated["assistance"]) == (
            "eligible", "eligible", "640.00"), "calculated: the eligibility reason is still there"
        case = uuid.uuid4()
        await send(CASE_DECIDED, CaseDecided(case_id=case, calculation_id=calc.calculation_id,
                                             settlement_id=s.settlement_id, decision="approved",
                                             amount=Decimal("640.00"), district_code="310110",
                                             subdistrict_code="310110001", decided_at=datetime.now(UTC)))
        await _wait_status(h001, "S-REASON", lambda x: x["status"] == "approved" and x["reason"] == "eligible")
        transfer = {"payment_id": uuid.uuid4(), "case_id": case, "calculation_id": calc.calculation_id,
                    "settlement_id": s.settlement_id, "amount": Decimal("640.00")}
        await send(TRANSFER_SETTLED, TransferSettled(**transfer, status="failed", reason="account_closed"))
        failed = await _wait_status(h001, "S-REASON", lambda x: x["status"] == "payment_failed")
        assert (failed["reason"], failed["eligibility_reason"]) == ("account_closed", "eligible")
        await send(TRANSFER_SETTLED, TransferSettled(**transfer, status="settled", bank_reference="BK1", attempt=2))
        paid = await _wait_status(h001, "S-REASON", lambda x: x["status"] == "paid")
        assert (paid["reason"], paid["eligibility_reason"]) == ("eligible", "eligible"), \
            "paid after a re-issue: the old failure is no longer the reason"
        assert [(j["status"], j["reason"]) for j in paid["journey"]] == [
            ("received", None), ("parked", "no_consent"), ("eligible", "eligible"), ("calculated", None),
            ("approved", None), ("payment_failed", "account_closed"), ("paid", None)]

        # Topics are not ordered with each other: a calculation can be seen before the decision behind it.
        await send(ASSISTANCE_CALCULATED, _calculated(late, "10.00"))
        await _wait_status(h001, "S-REASON-LATE", lambda x: x["status"] == "calculated")
        await send(ELIGIBILITY_DECIDED, EligibilityDecided(settlement=late, eligible=True, reason="eligible",
                                                           category="subsistence", district_code="310110",
                                                           subdistrict_code="310110001"))
        overtaken = await _wait_status(h001, "S-REASON-LATE", lambda x: x["eligibility_reason"] is not None)
        assert (overtaken["status"], overtaken["reason"], overtaken["eligibility_reason"]) == (
            "calculated", "eligible", "eligible")
    finally:
        await producer.stop()


async def _signed_post(url: str, path: str, body: object, now: int, age_s: int) -> httpx.Response:
    """A push signed `age_s` seconds before `now`: equal bodies sent at once are still distinct requests, not
    replays (one clock reading per test, so no two requests share a timestamp)."""
    raw = orjson.dumps(body)
    headers = {"Content-Type": "application/json",
               **signed_headers("H001", "dev-secret-H001", "POST", path, raw, now=now - age_s)}
    async with httpx.AsyncClient(base_url=url, timeout=60) as http:
        return await http.post(path, content=raw, headers=headers)


async def test_the_same_new_ids_pushed_at_once_are_accepted_once_and_never_fail(intake) -> None:  # type: ignore[no-untyped-def]
    settings, process = intake
    items = [settlement(rng, PATIENT, f"S-RACE-{i:02d}") for i in range(12)]
    batches = [random.Random(n).sample(items, len(items)) for n in range(6)]  # the same ids, in six orders
    now = int(time.time())
    responses = await asyncio.gather(*(_signed_post(process.url, "/v1/settlements:batch", {"items": b}, now, age_s=n)
                                       for n, b in enumerate(batches)))
    assert [r.status_code for r in responses] == [202] * 6, [r.text for r in responses if r.status_code != 202]
    ids = [{x["hospital_settlement_id"]: x["settlement_id"] for x in r.json()["results"]} for r in responses]
    assert all(i == ids[0] for i in ids), "every batch names the same settlement for each id"
    assert sum(r.json()["created"] for r in responses) == len(items), "each settlement created exactly once"

    single = settlement(rng, PATIENT, "S-RACE-SINGLE")
    other = {**single, "total_amount": "99999.00"}
    bodies = [single] * 40 + [other] * 10
    answers = await asyncio.gather(*(
        _signed_post(process.url, "/v1/settlements", body, now, age_s=10 + n) for n, body in enumerate(bodies)))
    codes = [a.status_code for a in answers]
    assert not [c for c in codes if c >= 500], codes
    assert set(codes) <= {202, 409}, [a.text for a in answers if a.status_code not in (202, 409)]
    created_by = [body is single for body, a in zip(bodies, answers, strict=True) if a.status_code == 202]
    assert len(created_by) in (40, 10) and len(set(created_by)) == 1, "one body won; the other is a 409 each time"
    assert codes.count(409) == 50 - len(created_by)
    assert {a.json()["code"] for a in answers if a.status_code == 409} == {"conflicting_duplicate"}
    assert sum(a.json()["outcome"] == "created" for a in answers if a.status_code == 202) == 1
    records = await read_topic(settings, SETTLEMENT_RECEIVED, expect=1_000_000, timeout=2)
    assert sum(b"S-RACE-SINGLE" in r.value for r in records) == 1, "published once"


async def test_one_person_is_one_pseudonym_in_any_digits_and_unknown_places_are_refused(intake, h001) -> None:  # type: ignore[no-untyped-def]
    settings, _ = intake
    full_width = "".join(chr(ord(c) + 0xFEE0) for c in PATIENT.national_id)
    ascii_body = settlement(rng, PATIENT, "S-WIDTH-A")
    wide_body = settlement(rng, Patient(full_width, PATIENT.name), "S-WIDTH-B")
    assert (await h001.push(ascii_body)).status_code == 202
    assert (await h001.push(wide_body)).status_code == 202
    again = {**ascii_body, "patient": {**ascii_body["patient"], "national_id": full_width}}
    await asyncio.sleep(1.1)
    assert (await h001.push(again)).json()["outcome"] == "duplicate", "the same body in other digits is a retry"
    records = await read_topic(settings, SETTLEMENT_RECEIVED, expect=1_000_000, timeout=2)
    keys = {r.key for r in records if b"S-WIDTH-" in r.value}
    assert len(keys) == 1, "one person, one person_ref"

    unknown_place = "65991319800101123" + "6"  # a valid check digit; stdnum knows no county 659913
    arabic = "".join(chr(ord(c) - ord("0") + 0x0660) for c in PATIENT.national_id)
    for nid in (unknown_place, arabic):
        body = settlement(rng, Patient(nid, PATIENT.name), f"S-BADID-{len(nid)}")
        response = await h001.push(body)
        assert response.status_code == 422, response.text
        assert response.json()["errors"][0]["code"] == "invalid_national_id"
        assert nid not in response.text
    for field, value in (("total_amount", "１２００.００"), ("total_amount", "١٢٠٠.٠٠"), ("discharge_date", 1772323200),
                         ("discharge_date", "2026-03-01T00:00:00")):
        response = await h001.push({**settlement(rng, PATIENT, "S-BADFORM"), field: value})
        assert response.status_code == 422 and response.json()["field"] == field, response.text


async def test_the_body_is_refused_by_its_form_before_anyone_reads_or_verifies_it(intake) -> None:  # type: ignore[no-untyped-def]
    settings, process = intake
    body = settlement(rng, PATIENT, "S-FORM")
    good = orjson.dumps(body)

    async def post(content: bytes, content_type: str | None = "application/json", signed: bool = True,
                   **extra: str) -> httpx.Response:
        headers = signed_headers("H001", "dev-secret-H001", "POST", "/v1/settlements", content) if signed else {}
        if content_type:
            headers["Content-Type"] = content_type
        async with httpx.AsyncClient(base_url=process.url, timeout=60) as http:
            return await http.post("/v1/settlements", content=content, headers={**headers, **extra})

    for content_type in ("text/plain", "application/x-www-form-urlencoded", None, "application/json; charset=latin-1"):
        response = await post(good, content_type)
        assert response.status_code == 415 and response.json()["code"] == "unsupported_media_type", response.text
    duplicated = good[:-1] + b',"total_amount":"1.00"}'  # the last one would win in a lenient parser
    response = await post(duplicated)
    assert response.status_code == 400 and response.json()["code"] == "duplicate_key", response.text
    nested = b'{"patient":' * 50_000 + b"{}" + b"}" * 50_000
    response = await post(nested)
    assert response.status_code == 400 and response.json()["code"] == "too_deep", response.text
    response = await post(b"[" * 40 + b"]" * 40)
    assert response.status_code == 400 and response.json()["code"] == "too_deep"

    # too large: refused from Content-Length alone, unsigned, before a byte is read
    response = await post(b" " * (settings.max_body_bytes + 1), signed=False)
    assert response.status_code == 413 and response.json()["code"] == "payload_too_large"
    # chunked, no Content-Length to go by: the answer comes while the body is still streaming, unfinished
    reader, writer = await asyncio.open_connection("127.0.0.1", int(process.url.rsplit(":", 1)[1]))
    writer.write(b"POST /v1/settlements HTTP/1.1\r\nHost: intake\r\nContent-Type: application/json\r\n"
                 b"Transfer-Encoding: chunked\r\n\r\n")
    chunk = b" " * 65536
    for _ in range(settings.max_body_bytes // len(chunk) + 2):
        writer.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        await writer.drain()
    status_line = await asyncio.wait_for(reader.readline(), timeout=60)  # the body's end was never sent
    writer.close()
    assert status_line.split()[1] == b"413", status_line
    client = IntakeClient(process.url, "H001", "dev-secret-H001")
    assert (await client.status("S-FORM")).status_code == 404, "nothing was stored"
    assert (await client.push(body)).status_code == 202, "the same settlement, well formed, is accepted"
    await client.aclose()


async def test_a_request_signed_ahead_stays_refused_as_a_replay_for_the_whole_window() -> None:
    window = 3
    settings = IntakeSettings(topic_prefix=unique_prefix("nonce"), database_name="test_intake_nonce",
                              signature_window_s=window)
    process = await start_service("intake", settings, MIGRATIONS, {"SIGNATURE_WINDOW_S": str(window)})
    try:
        content = orjson.dumps(settlement(rng, PATIENT, "S-AHEAD"))
        ahead = {"Content-Type": "application/json", **signed_headers(
            "H001", "dev-secret-H001", "POST", "/v1/settlements", content, now=int(time.time()) + window)}
        async with httpx.AsyncClient(base_url=process.url, timeout=60) as http:
            assert (await http.post("/v1/settlements", content=content, headers=ahead)).status_code == 202
            await asyncio.sleep(window + 1.5)  # its arrival is now older than the window; its timestamp is not
            other = orjson.dumps(settlement(rng, PATIENT, "S-PURGE"))
            purge = {"Content-Type": "application/json",
                     **signed_headers("H001", "dev-secret-H001", "POST", "/v1/settlements", other)}
            assert (await http.post("/v1/settlements", content=other, headers=purge)).status_code == 202
            replay = await http.post("/v1/settlements", content=content, headers=ahead)
        if int(ahead["X-Timestamp"]) + window >= int(time.time()):  # still inside its window: must be a replay
            assert replay.status_code == 401 and replay.json()["code"] == "replayed_request", replay.text
        else:  # a very slow machine: the window itself has closed
            assert replay.json()["code"] == "timestamp_out_of_window"
        db = Database(settings)
        try:  # the background loop forgets each signature once its own timestamp has left the window
            for _ in range(120):
                async with db.transaction() as session:
                    kept = (await session.execute(text("SELECT count(*) FILTER (WHERE expires_at < now()), "
                                                       "count(*) FROM request_nonce"))).one()
                if kept[1] == 0:
                    break
                assert kept[0] <= kept[1]
                await asyncio.sleep(0.5)
            assert tuple(kept) == (0, 0), "the expired signatures were forgotten, by the loop, not by a request"
        finally:
            await db.dispose()
    finally:
        process.stop()
