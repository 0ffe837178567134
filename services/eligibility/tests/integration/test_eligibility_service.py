"""Eligibility as its own process: registry import (JSON and CSV), consents, screening, parking, re-screening."""

import asyncio
import random
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime
from decimal import Decimal

import httpx
import orjson
import pytest
from eligibility.bootstrap import MIGRATIONS
from eligibility.config import EligibilitySettings
from simulators.hospital.feed import national_id, person_name

from shared.contracts.envelope import Envelope
from shared.contracts.events import (
    ContactsUpdated,
    ContactUpdated,
    EligibilityDecided,
    PayeeAccountsUpdated,
    PolicyPublished,
    SettlementReceived,
    per_person,
)
from shared.contracts.topics import (
    ELIGIBILITY_DECIDED,
    POLICY_PUBLISHED,
    REGISTRY_CONTACT,
    REGISTRY_KEY,
    REGISTRY_PAYEE,
    SETTLEMENT_RECEIVED,
    region_key,
)
from shared.messaging.kafka import KafkaProducer
from shared.security.crypto import FieldCipher, person_ref
from shared.security.staff_auth import mint_dev_token
from shared.testing import read_topic, start_service, unique_prefix

pytestmark = pytest.mark.integration
rng = random.Random(11)
PEPPER = b"dev-pepper-change-me"


@pytest.fixture(scope="module")
async def service() -> AsyncIterator[tuple[EligibilitySettings, str]]:
    settings = EligibilitySettings(topic_prefix=unique_prefix("elig"), database_name="test_eligibility")
    process = await start_service("eligibility", settings, MIGRATIONS)
    try:
        yield settings, process.url
    finally:
        process.stop()


def client(url: str, role: str, **area: str) -> httpx.AsyncClient:
    token = mint_dev_token("dev-jwt-secret-change-me-at-least-32-bytes", f"{role}-t", role,
                           area.get("district"), area.get("subdistrict"))
    return httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {token}"})


def record(nid: str, **over: str) -> dict[str, str]:
    return {"national_id": nid, "name": person_name(rng), "category": "subsistence", "district_code": "310110",
            "subdistrict_code": "310110001", "valid_from": "2026-01-01", "valid_to": "",
            "bank_account": "6222020200445566", "bank_name": "Bank", **over}


async def send_settlement(settings: EligibilitySettings, nid: str, discharge: date) -> uuid.UUID:
    data = SettlementReceived(
        settlement_id=uuid.uuid4(), hospital_id="H001", hospital_settlement_id=f"E-{uuid.uuid4().hex[:8]}",
        hospital_level=2, visit_type="inpatient", admission_date=discharge, discharge_date=discharge,
        total_amount=Decimal("1000.00"), policy_scope_amount=Decimal("900.00"),
        basic_insurance_paid=Decimal("400.00"), critical_illness_paid=Decimal("0.00"))
    producer = KafkaProducer(settings)
    await producer.start()
    ref = person_ref(PEPPER, nid)
    await producer.send_and_wait(settings.topic(SETTLEMENT_RECEIVED),
                                 Envelope.wrap(data, person_ref=ref, producer="test").to_bytes(), key=ref)
    await producer.stop()
    return data.settlement_id


async def decisions_for(settings: EligibilitySettings, settlement_id: uuid.UUID,
                        expect: int) -> list[EligibilityDecided]:
    import asyncio

    for _ in range(40):
        found = [e.payload() for e in (Envelope.from_bytes(r.value) for r in await read_topic(
            settings, ELIGIBILITY_DECIDED, expect=10_000, timeout=0.5)) if e.event_type == "EligibilityDecided"]
        mine = [d for d in found if d.settlement.settlement_id == settlement_id]  # type: ignore[attr-defined]
        if len(mine) >= expect:
            return mine  # type: ignore[return-value]
        await asyncio.sleep(0.25)
    raise AssertionError(f"expected {expect} decisions for {settlement_id}, got {len(mine)}")


async def test_csv_and_json_import_publish_the_account_only_encrypted(service) -> None:  # type: ignore[no-untyped-def]
    settings, url = service
    nid_a, nid_b = national_id(rng), national_id(rng)
    csv_body = "national_id,name,category,district_code,subdistrict_code,valid_from,valid_to,bank_account,bank_name\n"
    csv_body += f"{nid_a},张伟,low_income,310110,310110002,2026-01-01,,6222020200778899,Bank\n"
    async with client(url, "registry_officer") as officer:
        imported = await officer.post("/v1/registry/import", content=csv_body.encode(),
                                      headers={"Content-Type": "text/csv"})
        assert imported.status_code == 200, imported.text
        assert imported.json()["persons_created"] == 1 and imported.json()["payee_updates"] == 1
        again = await officer.post("/v1/registry/import", json={"records": [record(nid_b)]})
        assert again.status_code == 200
        looked = (await officer.post("/v1/persons:lookup", json={"national_id": nid_a})).json()
    assert looked["bank_account"] == "************8899" and looked["national_id"] != nid_a
    assert looked["name"] == "张*"
    payees = await read_topic(settings, REGISTRY_PAYEE, expect=2)
    raw = b"".join(r.value for r in payees)
    assert b"6222020200778899" not in raw and "张伟".encode() not in raw and nid_a.encode() not in raw
    assert all(isinstance(Envelope.from_bytes(r.value).payload(), PayeeAccountsUpdated) for r in payees)


async def test_a_bad_record_refuses_the_whole_import(service) -> None:  # type: ignore[no-untyped-def]
    _, url = service
    good, valid = national_id(rng), national_id(rng)
    wrong_check_digit = valid[:-1] + ("1" if valid[-1] != "1" else "2")
    async with client(url, "registry_officer") as officer:
        response = await officer.post("/v1/registry/import", json={"records": [
            record(good), record(wrong_check_digit), record(national_id(rng), subdistrict_code="310107001")]})
        assert response.status_code == 422
        problem = response.json()
        assert {e["index"] for e in problem["errors"]} == {1, 2}
        assert problem["errors"][0]["code"] == "invalid_national_id"
        assert good not in response.text
        missing = await officer.post("/v1/persons:lookup", json={"national_id": good})
        assert missing.status_code == 404, "nothing of the refused import was stored"


async def test_parked_for_consent_then_eligible_when_signed_before_the_date_of_care(service) -> None:  # type: ignore[no-untyped-def]
    settings, url = service
    nid = national_id(rng)
    async with client(url, "registry_officer") as officer:
        assert (await officer.post("/v1/registry/import", json={"records": [record(nid)]})).status_code == 200
        settlement_id = await send_settlement(settings, nid, date(2026, 3, 1))
        [first] = await decisions_for(settings, settlement_id, 1)
        assert (first.eligible, first.reason) == (False, "no_consent")
        signed = await officer.post("/v1/consents", json={"national_id": nid, "signed_on": "2026-02-20"})
        assert signed.status_code == 201 and signed.json()["rescreened"] == 1
    decisions = await decisions_for(settings, settlement_id, 2)
    assert (decisions[1].eligible, decisions[1].rescreened, decisions[1].category) == (True, True, "subsistence")
    assert decisions[1].district_code == "310110"


async def publish_policy(settings: EligibilitySettings, policy_id: str, version: int, region: str,
                         effective_from: date, lookback: str) -> None:
    data = PolicyPublished(policy_id=policy_id, policy_version=version, region_code=region,
                           effective_from=effective_from, consent_lookback=lookback, published_at=datetime.now(UTC))
    producer = KafkaProducer(settings)
    await producer.start()
    try:
        await producer.send_and_wait(settings.topic(POLICY_PUBLISHED), Envelope.wrap(
            data, person_ref=region_key(region), producer="test").to_bytes(), key=region_key(region))
    finally:
        await producer.stop()


async def known_terms(url: str, region: str, versions: int) -> list[dict]:  # type: ignore[type-arg]
    async with client(url, "ops") as ops:
        for _ in range(240):
            terms = (await ops.get("/v1/policy-terms", params={"region_code": region})).json()
            if len(terms) >= versions:
                return terms  # type: ignore[no-any-return]
            await asyncio.sleep(0.25)
    raise AssertionError(f"eligibility knows {terms} of {region}")


async def test_the_consent_lookback_is_the_region_policys_and_each_decision_says_which_applied(service) -> None:  # type: ignore[no-untyped-def]
    settings, url = service
    region = "990500"
    early, late = national_id(rng), national_id(rng)
    area = {"district_code": region, "subdistrict_code": f"{region}001"}
    async with client(url, "registry_officer") as officer:
        imported = await officer.post("/v1/registry/import", json={"records": [record(early, **area),
                                                                               record(late, **area)]})
        assert imported.status_code == 200, imported.text
        march = await send_settlement(settings, early, date(2026, 3, 1))
        [first] = await decisions_for(settings, march, 1)
        # No policy of the region known yet: the strict default, and the decision says so.
        assert (first.reason, first.consent_lookback, first.lookback_policy_id) == ("no_consent", "none", None)
        signed = await officer.post("/v1/consents", json={"national_id": early, "signed_on": "2026-06-01"})
        assert signed.status_code == 201 and signed.json()["rescreened"] == 0, "June does not cover March by default"

        # The region's policy arrives after the settlement was parked: its lookback covers March now.
        await publish_policy(settings, "lookback-990500", 1, region, date(2026, 1, 1), "calendar_year")
        decisions = await decisions_for(settings, march, 2)
        assert (decisions[1].eligible, decisions[1].rescreened, decisions[1].consent_lookback,
                decisions[1].lookback_policy_id, decisions[1].lookback_policy_version) == (
            True, True, "calendar_year", "lookback-990500", 1)
        [screened] = (await officer.post("/v1/persons:lookup", json={"national_id": early})).json()["screenings"]
        assert (screened["eligible"], screened["consent_lookback"], screened["lookback_policy_id"],
                screened["lookback_policy_version"]) == (True, "calendar_year", "lookback-990500", 1)

        # Version 2 turns the lookback off from July: each settlement is judged by the version covering its date.
        await publish_policy(settings, "lookback-990500", 2, region, date(2026, 7, 1), "none")
        await publish_policy(settings, "lookback-990500", 1, region, date(2026, 1, 1), "calendar_year")  # again
        terms = await known_terms(url, region, 2)
        assert [(t["version"], t["effective_from"], t["consent_lookback"]) for t in terms] == [
            (1, "2026-01-01", "calendar_year"), (2, "2026-07-01", "none")]
        assert (await officer.post("/v1/consents", json={"national_id": late, "signed_on": "2026-09-01"})
                ).status_code == 201
        may, august = (await send_settlement(settings, late, date(2026, 5, 1)),
                       await send_settlement(settings, late, date(2026, 8, 1)))
    [in_may] = await decisions_for(settings, may, 1)
    [in_august] = await decisions_for(settings, august, 1)
    assert (in_may.eligible, in_may.consent_lookback, in_may.lookback_policy_version) == (True, "calendar_year", 1)
    assert (in_august.eligible, in_august.reason, in_august.consent_lookback, in_august.lookback_policy_version) == (
        False, "no_consent", "none", 2)
    assert len(await decisions_for(settings, march, 2)) == 2, "the repeated version screened nothing again"


async def test_revocation_applies_from_its_date_on(service) -> None:  # type: ignore[no-untyped-def]
    settings, url = service
    nid = national_id(rng)
    async with client(url, "clerk", district="310110", subdistrict="310110001") as clerk, \
            client(url, "registry_officer") as officer:
        await officer.post("/v1/registry/import", json={"records": [record(nid)]})
        consent = (await clerk.post("/v1/consents", json={"national_id": nid, "signed_on": "2026-01-02"})).json()
        revoked = await clerk.post(f"/v1/consents/{consent['consent_id']}/revoke", json={"revoked_on": "2026-05-01"})
        assert revoked.status_code == 200 and revoked.json()["revoked_on"] == "2026-05-01"
    before = await send_settlement(settings, nid, date(2026, 4, 30))
    after = await send_settlement(settings, nid, date(2026, 5, 1))
    assert (await decisions_for(settings, before, 1))[0].reason == "eligible"
    assert (await decisions_for(settings, after, 1))[0].reason == "consent_revoked"


async def test_roles_are_enforced(service) -> None:  # type: ignore[no-untyped-def]
    _, url = service
    async with httpx.AsyncClient(base_url=url) as anonymous, client(url, "policy_admin") as admin, \
            client(url, "ops") as ops:
        assert (await anonymous.post("/v1/registry/import", json={"records": []})).status_code == 401
        assert (await admin.post("/v1/registry/import", json={"records": []})).json()["code"] == "forbidden_role"
        assert (await ops.post("/v1/consents", json={"national_id": national_id(rng),
                                                     "signed_on": "2026-01-01"})).status_code == 403


async def test_a_lookup_finds_only_persons_of_the_callers_area_and_every_read_is_audited(service) -> None:  # type: ignore[no-untyped-def]
    from sqlalchemy import text

    from shared.db import Database

    settings, url = service
    nid = national_id(rng)
    async with client(url, "registry_officer") as city, \
            client(url, "registry_officer", district="310110") as own, \
            client(url, "registry_officer", district="310115") as other, \
            client(url, "registry_officer", district="310110", subdistrict="310110002") as neighbour:
        assert (await city.post("/v1/registry/import", json={"records": [record(nid)]})).status_code == 200
        assert (await own.post("/v1/persons:lookup", json={"national_id": nid})).status_code == 200
        for stranger in (other, neighbour):
            response = await stranger.post("/v1/persons:lookup", json={"national_id": nid})
            assert response.status_code == 404 and response.json()["code"] == "person_not_found", response.text
            unknown = await stranger.post("/v1/persons:lookup", json={"national_id": national_id(rng)})
            assert response.json() == unknown.json(), "outside your area a person does not exist for you"
    db = Database(settings, owner=True)
    try:
        async with db.transaction() as session:
            rows = (await session.execute(text(
                "SELECT actor, role, purpose, fields FROM personal_data_read WHERE person_ref = :ref ORDER BY id"),
                {"ref": person_ref(PEPPER, nid)})).all()
            assert [tuple(r) for r in rows] == [("registry_officer-t", "registry_officer", "person_lookup",
                                                 "name,national_id")], "one row per answered read, none for a 404"
        with pytest.raises(Exception, match="append-only"):
            async with db.transaction() as session:
                await session.execute(text("DELETE FROM personal_data_read"))
    finally:
        await db.dispose()


async def test_consents_are_recorded_and_revoked_only_inside_the_persons_area(service) -> None:  # type: ignore[no-untyped-def]
    _, url = service
    nid, unlisted = national_id(rng), national_id(rng)
    on = {"signed_on": "2026-02-01"}
    async with client(url, "registry_officer") as city, \
            client(url, "clerk", district="310110", subdistrict="310110001") as own_clerk, \
            client(url, "clerk", district="310110", subdistrict="310110002") as neighbour, \
            client(url, "clerk", district="310115", subdistrict="310115001") as far_clerk, \
            client(url, "registry_officer", district="310115") as far_officer:
        assert (await city.post("/v1/registry/import", json={"records": [record(nid)]})).status_code == 200
        for stranger in (neighbour, far_clerk, far_officer):
            refused = await stranger.post("/v1/consents", json={"national_id": nid, **on})
            assert refused.status_code == 404 and refused.json()["code"] == "person_not_found", refused.text
        # a clerk records consents only of persons the registry lists in their sub-district
        waiting = await own_clerk.post("/v1/consents", json={"national_id": unlisted, **on})
        assert waiting.status_code == 404
        signed = await own_clerk.post("/v1/consents", json={"national_id": nid, **on})
        assert signed.status_code == 201 and signed.json()["registry_status"] == "listed", signed.text
        consent_id = signed.json()["consent_id"]
        again = await own_clerk.post("/v1/consents", json={"national_id": nid, **on})
        assert again.status_code == 200 and again.json()["consent_id"] == consent_id, "a retry, not a second one"
        for stranger in (neighbour, far_clerk, far_officer):
            refused = await stranger.post(f"/v1/consents/{consent_id}/revoke", json={"revoked_on": "2026-03-01"})
            assert refused.status_code == 404 and refused.json()["code"] == "consent_not_found", refused.text
        looked = (await city.post("/v1/persons:lookup", json={"national_id": nid})).json()
        assert [c["revoked_on"] for c in looked["consents"]] == [None], "nobody outside the area revoked it"
        # a registry officer may record one ahead of the registry: it waits for the registry to list the person
        ahead = await city.post("/v1/consents", json={"national_id": unlisted, **on})
        assert ahead.status_code == 201 and ahead.json()["registry_status"] == "waiting_for_registry"
        assert (await far_officer.post(f"/v1/consents/{ahead.json()['consent_id']}/revoke",
                                       json={"revoked_on": "2026-03-01"})).status_code == 200
        # a district's officer imports only its own district's records, whole
        moved = await far_officer.post("/v1/registry/import", json={"records": [
            record(national_id(rng), district_code="310115", subdistrict_code="310115001"), record(nid)]})
        assert moved.status_code == 403 and [e["index"] for e in moved.json()["errors"]] == [1], moved.text


async def test_the_same_registry_records_and_consents_sent_at_once_are_stored_once(service) -> None:  # type: ignore[no-untyped-def]
    import asyncio

    _, url = service
    nids = [national_id(rng) for _ in range(15)]
    async with client(url, "registry_officer") as officer:
        batches = [{"records": [record(n) for n in random.Random(k).sample(nids, len(nids))]} for k in range(6)]
        imports = await asyncio.gather(*(officer.post("/v1/registry/import", json=b) for b in batches))
        assert [r.status_code for r in imports] == [200] * 6, [r.text for r in imports if r.status_code != 200]
        assert sum(r.json()["persons_created"] for r in imports) == len(nids), "each person created once"
        consents = await asyncio.gather(*(officer.post("/v1/consents", json={
            "national_id": nids[0], "signed_on": "2026-02-01"}) for _ in range(20)))
        assert sorted(r.status_code for r in consents) == [200] * 19 + [201], [r.text for r in consents]
        assert len({r.json()["consent_id"] for r in consents}) == 1
        looked = (await officer.post("/v1/persons:lookup", json={"national_id": nids[0]})).json()
        assert len(looked["consents"]) == 1


async def test_one_person_is_one_entry_whatever_digits_the_id_is_written_in(service) -> None:  # type: ignore[no-untyped-def]
    _, url = service
    nid = national_id(rng)
    full_width = "".join(chr(ord(c) + 0xFEE0) for c in nid)
    async with client(url, "registry_officer") as officer:
        imported = await officer.post("/v1/registry/import", json={"records": [record(full_width)]})
        assert imported.status_code == 200, imported.text
        found = await officer.post("/v1/persons:lookup", json={"national_id": nid})
        assert found.status_code == 200 and found.json()["person_ref"] == person_ref(PEPPER, nid)
        consent = await officer.post("/v1/consents", json={"national_id": full_width.lower(),
                                                           "signed_on": "2026-02-01"})
        assert consent.json()["person_ref"] == person_ref(PEPPER, nid)
        unknown_place = "65991319800101123" + "6"  # valid check digit, a county stdnum does not know
        for path, extra in (("/v1/persons:lookup", {}), ("/v1/consents", {"signed_on": "2026-02-01"})):
            response = await officer.post(path, json={"national_id": unknown_place, **extra})
            assert response.status_code == 422 and response.json()["code"] == "invalid_national_id", response.text
        bad = await officer.post("/v1/registry/import", json={"records": [
            record(unknown_place), record(national_id(rng), valid_from=1767225600),
            record(national_id(rng), valid_from="2026-01-01T00:00:00"),
            record(national_id(rng), district_code="３１０１１０")]})
        assert bad.status_code == 422 and {e["index"] for e in bad.json()["errors"]} == {0, 1, 2, 3}, bad.text


async def test_an_import_nested_50000_deep_or_with_duplicate_keys_is_a_400_not_a_500(service) -> None:  # type: ignore[no-untyped-def]
    _, url = service
    nid = national_id(rng)
    json_type = {"Content-Type": "application/json"}
    async with client(url, "registry_officer") as officer:
        deep = b'{"records": ' + b"[" * 50_000 + b"]" * 50_000 + b"}"
        response = await officer.post("/v1/registry/import", content=deep, headers=json_type)
        assert response.status_code == 400 and response.json()["code"] == "too_deep", response.text
        one = {**record(nid), "district_code": "310110"}
        twice = orjson.dumps({"records": [one]}).replace(b'"district_code"',
                                                         b'"district_code":"310115","district_code"')
        response = await officer.post("/v1/registry/import", content=twice, headers=json_type)
        assert response.status_code == 400 and response.json()["code"] == "duplicate_key", response.text
        response = await officer.post("/v1/registry/import", content=b"national_id\n",
                                      headers={"Content-Type": "text/plain"})
        assert response.status_code == 415, response.text
        assert (await officer.post("/v1/persons:lookup", json={"national_id": nid})).status_code == 404
async def test_phone_numbers_travel_only_encrypted_and_the_opt_out_with_the_consent(service) -> None:  # type: ignore[no-untyped-def]
    settings, url = service
    nid, phone, new_phone = national_id(rng), "13912345678", "13687654321"
    ref = person_ref(PEPPER, nid)
    async with client(url, "registry_officer") as officer:
        first = await officer.post("/v1/registry/import", json={"records": [record(nid, phone=phone)]})
        assert first.status_code == 200 and first.json()["contact_updates"] == 1
        same = await officer.post("/v1/registry/import", json={"records": [record(nid, phone=phone)]})
        assert same.json()["contact_updates"] == 0, "an unchanged number is no new version"
        signed = await officer.post("/v1/consents", json={"national_id": nid, "signed_on": "2026-01-05",
                                                          "sms_opt_out": True})
        assert signed.status_code == 201 and signed.json()["sms_opt_out"] is True
        await officer.post("/v1/registry/import", json={"records": [record(nid, phone=new_phone)]})
        looked = (await officer.post("/v1/persons:lookup", json={"national_id": nid})).json()
        bad = await officer.post("/v1/registry/import", json={"records": [record(national_id(rng), phone="12345")]})
    assert (looked["phone"], looked["sms_opt_out"]) == ("136****4321", True)
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "records.0.phone"
    records = await read_topic(settings, REGISTRY_CONTACT, expect=3)
    assert {r.key for r in records} == {REGISTRY_KEY.encode()}
    assert phone.encode() not in b"".join(r.value for r in records)
    assert new_phone.encode() not in b"".join(r.value for r in records)
    chunks = [Envelope.from_bytes(r.value).payload() for r in records]
    assert all(isinstance(c, ContactsUpdated) for c in chunks)
    contacts = [c for chunk in chunks for r, c in per_person(REGISTRY_KEY, chunk) if r == ref]
    cipher = FieldCipher.from_config(settings.contact_keys.get_secret_value(), settings.contact_active_key_id)
    seen = [(c.contact_version, cipher.decrypt(c.phone_ciphertext, ref), c.phone_masked, c.sms_opt_out)
            for c in contacts if isinstance(c, ContactUpdated) and c.phone_ciphertext]
    assert seen == [(1, phone, "139****5678", False), (2, phone, "139****5678", True),
                    (3, new_phone, "136****4321", True)]
