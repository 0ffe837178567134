"""A small world to drive the whole system: people in the registry, consents, hospitals, staff.

Used by `make run` (deploy/local/demo.py), the end-to-end tests and the benchmark.
"""

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import httpx

from shared.security.staff_auth import mint_dev_token
from simulators.hospital.client import IntakeClient
from simulators.hospital.feed import Patient, national_id, person_name

DISTRICTS = {"310110": ["310110001", "310110002"], "310107": ["310107001"]}
CATEGORIES = ["extreme_poverty", "subsistence", "low_income"]


@dataclass
class Resident:
    patient: Patient
    district: str
    subdistrict: str
    category: str | None  # None: not in the registry
    valid_from: date = date(2025, 1, 1)
    valid_to: date | None = None
    consent_on: date | None = date(2026, 1, 2)
    bank_account: str = ""
    phone: str | None = None
    sms_opt_out: bool = False

    def record(self) -> dict[str, Any]:
        return {"national_id": self.patient.national_id, "name": self.patient.name, "category": self.category,
                "district_code": self.district, "subdistrict_code": self.subdistrict,
                "valid_from": self.valid_from.isoformat(),
                "valid_to": self.valid_to.isoformat() if self.valid_to else None,
                "bank_account": self.bank_account, "bank_name": "Bank of Shanghai", "phone": self.phone}


def residents(rng: random.Random, n: int, *, unregistered: int = 0, without_consent: int = 0,
              closed_accounts: int = 0) -> list[Resident]:
    """n residents; the last ones are unregistered / without consent / with a closed bank account."""
    people = []
    for _ in range(n):
        district = rng.choice(list(DISTRICTS))
        account = "62220" + "".join(str(rng.randrange(10)) for _ in range(11))
        if account.endswith("0000"):
            account = account[:-1] + "1"
        phone = f"1{rng.choice('3589')}{rng.randrange(10**9):09d}"
        if phone.endswith("0000"):  # the SMS simulator's switched-off numbers
            phone = phone[:-1] + "1"
        people.append(Resident(Patient(national_id(rng, district), person_name(rng)), district,
                               rng.choice(DISTRICTS[district]), rng.choice(CATEGORIES), bank_account=account,
                               phone=phone))
    tail = iter(reversed(people))
    for _ in range(unregistered):
        next(tail).category = None
    for _ in range(without_consent):
        next(tail).consent_on = None
    for _ in range(closed_accounts):
        person = next(tail)
        person.bank_account = person.bank_account[:-4] + "0000"  # the bank simulator's closed accounts
    return people


@dataclass
class Endpoints:
    intake: str = "http://127.0.0.1:8001"
    eligibility: str = "http://127.0.0.1:8002"
    calculation: str = "http://127.0.0.1:8003"
    approval: str = "http://127.0.0.1:8004"
    disbursement: str = "http://127.0.0.1:8005"
    bank: str = "http://127.0.0.1:8090"
    notification: str = "http://127.0.0.1:8006"
    sms: str = "http://127.0.0.1:8091"
    jwt_secret: str = "dev-jwt-secret-change-me-at-least-32-bytes"
    hospital_secrets: dict[str, str] = field(default_factory=lambda: {
        "H001": "dev-secret-H001", "H002": "dev-secret-H002", "H003": "dev-secret-H003"})
    topic_prefix: str = ""
    logs: list[Any] = field(default_factory=list)


class Staff:
    """HTTP clients of staff members with development tokens."""

    def __init__(self, endpoints: Endpoints) -> None:
        self.endpoints = endpoints
        self._clients: list[httpx.AsyncClient] = []

    def client(self, base_url: str, role: str, district: str | None = None, subdistrict: str | None = None,
               subject: str | None = None) -> httpx.AsyncClient:
        token = mint_dev_token(self.endpoints.jwt_secret, subject or f"{role}-{subdistrict or district or 'all'}",
                               role, district, subdistrict)
        client = httpx.AsyncClient(base_url=base_url, headers={"Authorization": f"Bearer {token}"}, timeout=60)
        self._clients.append(client)
        return client

    def hospital(self, hospital_id: str) -> IntakeClient:
        return IntakeClient(self.endpoints.intake, hospital_id, self.endpoints.hospital_secrets[hospital_id])

    async def aclose(self) -> None:
        await asyncio.gather(*(c.aclose() for c in self._clients))


async def import_registry(officer: httpx.AsyncClient, people: list[Resident]) -> dict[str, Any]:
    response = await officer.post("/v1/registry/import",
                                  json={"records": [p.record() for p in people if p.category]})
    response.raise_for_status()
    result: dict[str, Any] = response.json()
    return result


async def sign_consents(officer: httpx.AsyncClient, people: list[Resident]) -> int:
    signed = 0
    for p in people:
        if p.consent_on:
            response = await officer.post("/v1/consents", json={"national_id": p.patient.national_id,
                                                                "signed_on": p.consent_on.isoformat(),
                                                                "sms_opt_out": p.sms_opt_out})
            response.raise_for_status()
            signed += 1
    return signed


async def wait_for(check: Callable[[], Awaitable[bool]], timeout: float, what: str, every: float = 0.3) -> float:
    """Poll until `check` holds; returns the seconds it took."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    while not await check():
        if loop.time() - start > timeout:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        await asyncio.sleep(every)
    return loop.time() - start


async def all_pages(client: httpx.AsyncClient, path: str, **params: Any) -> list[dict[str, Any]]:
    """Every item of a paginated listing (approval's {total, items} shape)."""
    items: list[dict[str, Any]] = []
    while True:
        response = await client.get(path, params={**params, "limit": 500, "offset": len(items)})
        response.raise_for_status()
        page = response.json()
        items += page["items"]
        if len(items) >= page["total"] or not page["items"]:
            return items


async def approve_everything(staff: Staff, reject: Callable[[dict[str, Any]], str | None] = lambda c: None
                             ) -> dict[str, int]:
    """Clerks batch-approve their queues, then district reviewers approve (or reject) theirs."""
    counts = {"clerk_approved": 0, "district_approved": 0, "rejected": 0}
    for district, subdistricts in DISTRICTS.items():
        for sub in subdistricts:
            clerk = staff.client(staff.endpoints.approval, "clerk", district, sub)
            queue = await all_pages(clerk, "/v1/cases", state="awaiting_subdistrict")
            for chunk in range(0, len(queue), 200):
                ids = [c["case_id"] for c in queue[chunk:chunk + 200]]
                result = (await clerk.post("/v1/cases:batch-approve", json={"case_ids": ids})).json()
                counts["clerk_approved"] += result["approved"]
        reviewer = staff.client(staff.endpoints.approval, "district_reviewer", district)
        for case in await all_pages(reviewer, "/v1/cases", state="awaiting_district"):
            reason = reject(case)
            if reason:
                response = await reviewer.post(f"/v1/cases/{case['case_id']}/reject",
                                               json={"reason": reason, "comment": "demo"})
                counts["rejected"] += response.status_code == 200
            else:
                response = await reviewer.post(f"/v1/cases/{case['case_id']}/approve", json={})
                counts["district_approved"] += response.status_code == 200
    return counts
