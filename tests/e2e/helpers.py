"""What the end-to-end tests do through the public APIs, as hospitals and staff would."""

import asyncio
from typing import Any

from simulators.hospital.client import IntakeClient
from simulators.scenario import Resident, Staff, all_pages, import_registry, sign_consents, wait_for


async def enrol(staff: Staff, people: list[Resident], category: str | None = None) -> None:
    """The registry officer imports the people (all in `category` when given) and records their consents."""
    for person in people:
        person.category = category or person.category
    officer = staff.client(staff.endpoints.eligibility, "registry_officer")
    await import_registry(officer, people)
    await sign_consents(officer, people)


async def push_all(hospital: IntakeClient, settlements: list[dict[str, Any]]) -> dict[str, str]:
    """Push in batches; returns hospital_settlement_id -> settlement_id."""
    ids: dict[str, str] = {}
    for start in range(0, len(settlements), 100):
        response = await hospital.push_batch(settlements[start:start + 100])
        assert response.status_code == 202, response.text
        ids.update({r["hospital_settlement_id"]: r["settlement_id"] for r in response.json()["results"]})
    return ids


async def statuses(hospital: IntakeClient, hospital_ids: list[str]) -> dict[str, dict[str, Any]]:
    out = {}
    for hid in hospital_ids:
        response = await hospital.status(hid)
        assert response.status_code == 200, response.text
        out[hid] = response.json()
    return out


async def wait_statuses(hospital: IntakeClient, hospital_ids: list[str], done: set[str],
                        timeout: float = 120) -> dict[str, dict[str, Any]]:
    """Wait until every listed settlement's status is in `done`."""
    result: dict[str, dict[str, Any]] = {}

    async def check() -> bool:
        nonlocal result
        result = await statuses(hospital, hospital_ids)
        return all(s["status"] in done for s in result.values())

    try:
        await wait_for(check, timeout, f"settlements to reach {sorted(done)}", every=0.5)
    except TimeoutError:
        stuck = {k: v["status"] for k, v in result.items() if v["status"] not in done}
        raise AssertionError(f"not all settlements reached {sorted(done)}: {stuck}") from None
    return result


async def cases_for(staff: Staff, settlement_ids: set[str]) -> list[dict[str, Any]]:
    ops = staff.client(staff.endpoints.approval, "ops")
    return [c for c in await all_pages(ops, "/v1/cases") if c["settlement_id"] in settlement_ids]


async def approve(staff: Staff, cases: list[dict[str, Any]]) -> None:
    """The clerk of each case's sub-district approves (in batches), then the district reviewer approves."""
    by_sub: dict[tuple[str, str], list[str]] = {}
    for c in cases:
        by_sub.setdefault((c["district_code"], c["subdistrict_code"]), []).append(c["case_id"])
    for (district, sub), ids in by_sub.items():
        clerk = staff.client(staff.endpoints.approval, "clerk", district, sub)
        for start in range(0, len(ids), 200):  # approval's largest batch
            result = (await clerk.post("/v1/cases:batch-approve", json={"case_ids": ids[start:start + 200]})).json()
            assert result["failed"] == 0, result
    for c in cases:
        reviewer = staff.client(staff.endpoints.approval, "district_reviewer", c["district_code"])
        response = await reviewer.post(f"/v1/cases/{c['case_id']}/approve", json={})
        assert response.status_code == 200, response.text


async def settle(seconds: float = 1.0) -> None:
    await asyncio.sleep(seconds)
