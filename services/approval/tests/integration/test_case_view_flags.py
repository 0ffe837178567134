"""The case view from events alone: a person the registry has not sent yet, then their entry (name decrypted,
read recorded), and the flags that follow from later events: an account change and a failed payment."""

import asyncio
import uuid
from collections.abc import Callable
from datetime import date
from decimal import Decimal

import httpx
import orjson
import pytest

from shared.contracts.events import (
    CategoryPeriod,
    ConsentPeriod,
    PersonRecorded,
    PersonsRecorded,
    RecordedPerson,
    TransferSettled,
)
from shared.contracts.topics import REGISTRY_KEY, REGISTRY_PERSON, TRANSFER_SETTLED
from shared.security.crypto import FieldCipher

# the approval service under test, as the approval tests start it
from .test_approval_service import Approval, approval, calculation, person, subdistrict  # noqa: F401

pytestmark = pytest.mark.integration
NATIONAL_ID, NAME = "110101199003077777", "赵建国"


def recorded(service: Approval, ref: str, sub: str, account_version: int) -> PersonRecorded:
    cipher = FieldCipher.from_config(service.settings.case_view_keys.get_secret_value(),
                                     service.settings.case_view_active_key_id)
    identity = orjson.dumps({"name": NAME, "national_id": NATIONAL_ID}).decode()
    return PersonRecorded(identity_ciphertext=cipher.encrypt(identity, ref), district_code=sub[:6],
                          subdistrict_code=sub, account_version=account_version,
                          periods=[CategoryPeriod(category="subsistence", valid_from=date(2026, 1, 1),
                                                  valid_to=date(2026, 12, 31))],
                          consents=[ConsentPeriod(signed_on=date(2026, 2, 1))])


def flag_codes(view: dict) -> set[str]:  # type: ignore[type-arg]
    return {f["code"] for f in view["flags"]}


async def review_until(client: httpx.AsyncClient, case_id: str, until: Callable[[dict], bool]) -> dict:  # type: ignore[type-arg]
    deadline = asyncio.get_running_loop().time() + 60
    while True:
        view = (await client.get(f"/v1/cases/{case_id}/review")).json()
        if until(view):
            return view  # type: ignore[no-any-return]
        assert asyncio.get_running_loop().time() < deadline, view
        await asyncio.sleep(0.2)


async def test_who_arrives_as_an_event_and_the_flags_follow_the_person(approval: Approval) -> None:  # noqa: F811
    sub, ref = subdistrict(), person()
    big, small = calculation(sub, "6000.00"), calculation(sub, "100.00")
    cases = await approval.open_cases([big, small], ref)
    big_id, small_id = cases[0]["case_id"], cases[1]["case_id"]
    async with approval.client("clerk", sub[:6], sub, subject="clerk-zhao") as clerk, \
            approval.client("district_reviewer", sub[:6], subject="reviewer-qian") as reviewer:
        view = (await clerk.get(f"/v1/cases/{small_id}/review")).json()
        assert view["who"] == {"known": False, "category": "subsistence", "district_code": sub[:6],
                               "subdistrict_code": sub}
        assert flag_codes(view) == set()
        assert flag_codes((await clerk.get(f"/v1/cases/{big_id}/review")).json()) == {"large_amount"}
        assert (await reviewer.get(f"/v1/cases/{small_id}/personal-data-reads")).json() == []  # nothing decrypted

        # an entry of the earlier one-person shape, keyed by the person, as a deployed topic may still hold
        await approval.send(REGISTRY_PERSON, recorded(approval, ref, sub, 1), ref)
        view = await review_until(reviewer, small_id, lambda v: v["who"]["known"])
        who = view["who"]
        assert (who["name"], who["national_id_masked"]) == (NAME, "110***********7777")
        assert (who["category_valid_from"], who["category_valid_to"], who["consent_signed_on"]) == (
            "2026-01-01", "2026-12-31", "2026-02-01")
        assert flag_codes(view) == set()  # the first account is no change

        other = person()  # then many persons an event, as eligibility publishes them (ADR 0033)
        await approval.send(REGISTRY_PERSON, PersonsRecorded(persons=[
            RecordedPerson(person_ref=p, **recorded(approval, p, sub, version).model_dump())
            for p, version in ((other, 1), (ref, 2))]), REGISTRY_KEY)
        await approval.send(TRANSFER_SETTLED, TransferSettled(
            payment_id=uuid.uuid4(), case_id=uuid.UUID(big_id), calculation_id=big.calculation_id,
            settlement_id=big.settlement_id, status="failed", reason="account_closed", amount=Decimal("6000.00")), ref)
        view = await review_until(reviewer, small_id,
                                  lambda v: flag_codes(v) == {"account_changed_recently", "payment_failed_before"})
        assert view["who"]["name"] == NAME  # the entry from the chunk, decrypted under this person's ref
        flagged = (await clerk.get("/v1/cases", params={"flag": ["account_changed_recently", "payment_failed_before"],
                                                        "subdistrict_code": sub})).json()
        assert {c["case_id"] for c in flagged["items"]} == {big_id, small_id}

        reads = (await reviewer.get(f"/v1/cases/{small_id}/personal-data-reads")).json()
        assert {(r["role"], r["purpose"], tuple(r["fields"])) for r in reads} == {
            ("district_reviewer", "case_review", ("name", "national_id"))}
        assert len(reads) >= 2  # one row per view that decrypted, none for the views before the entry came
