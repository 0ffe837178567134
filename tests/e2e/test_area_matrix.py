"""Every endpoint that returns or changes one person's data x staff of every area: inside the person's area the
answer is the data, outside it the person (ledger, lookup, consent, calculation, case) does not exist: the
same 404 document as for an id nobody has."""

import random
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from simulators.hospital.feed import national_id, settlement
from simulators.scenario import Endpoints, Resident, Staff, import_registry, residents, sign_consents

from tests.e2e.helpers import cases_for, push_all, wait_statuses

pytestmark = pytest.mark.e2e


@pytest.fixture
async def staff(stack: Endpoints) -> AsyncIterator[Staff]:
    s = Staff(stack)
    yield s
    await s.aclose()


def callers(person: Resident) -> dict[str, tuple[str, str | None, str | None, bool]]:
    """label -> (role, district, sub-district, inside the person's area)."""
    neighbour = "310110002" if person.subdistrict != "310110002" else "310110001"
    other = "310107" if person.district == "310110" else "310110"
    return {
        "clerk of the person's sub-district": ("clerk", person.district, person.subdistrict, True),
        "clerk of the same district's other sub-district": ("clerk", "310110", neighbour, person.district != "310110"),
        "clerk of another district": ("clerk", other, f"{other}001", False),
        "reviewer of the person's district": ("district_reviewer", person.district, None, True),
        "reviewer of another district": ("district_reviewer", other, None, False),
        "registry officer of the city": ("registry_officer", None, None, True),
        "registry officer of the person's district": ("registry_officer", person.district, None, True),
        "registry officer of another district": ("registry_officer", other, None, False),
        "operations": ("ops", None, None, True),
    }


async def test_a_persons_data_exists_only_for_staff_of_their_area(staff: Staff, stack: Endpoints) -> None:
    rng = random.Random(411)
    [person] = [p for p in residents(rng, 10) if p.district == "310110"][:1]
    person.category = "subsistence"
    officer = staff.client(stack.eligibility, "registry_officer")
    await import_registry(officer, [person])
    await sign_consents(officer, [person])
    hospital = staff.hospital("H002")
    body = settlement(rng, person.patient, "AREA-0001")
    body.update(policy_scope_amount="5000.00", total_amount="6000.00", basic_insurance_paid="3000.00",
                critical_illness_paid="0.00")
    ids = await push_all(hospital, [body])
    await wait_statuses(hospital, ["AREA-0001"], {"calculated"})
    [case] = await cases_for(staff, {ids["AREA-0001"]})
    ref = case["person_ref"]
    stranger = national_id(rng, "310110")
    requests: list[tuple[str, str, str, Any, Any, set[str]]] = [
        # (service, method, path, body, the same request for nobody, roles the endpoint admits at all)
        ("calculation", "GET", f"/v1/ledgers/{ref}", None, ("GET", f"/v1/ledgers/{'0' * 64}", None),
         {"clerk", "district_reviewer", "ops"}),
        ("calculation", "GET", f"/v1/calculations/{ids['AREA-0001']}", None,
         ("GET", f"/v1/calculations/{uuid.uuid4()}", None), {"clerk", "district_reviewer", "ops"}),
        ("eligibility", "POST", "/v1/persons:lookup", {"national_id": person.patient.national_id},
         ("POST", "/v1/persons:lookup", {"national_id": stranger}), {"registry_officer", "ops"}),
        ("eligibility", "POST", "/v1/consents", {"national_id": person.patient.national_id,
                                                 "signed_on": person.consent_on.isoformat()},  # type: ignore[union-attr]
         None, {"registry_officer", "clerk"}),
        ("approval", "GET", f"/v1/cases/{case['case_id']}", None, ("GET", f"/v1/cases/{uuid.uuid4()}", None),
         {"clerk", "district_reviewer", "ops"}),
    ]
    wrong, checks = [], 0
    for label, (role, district, sub, inside) in callers(person).items():
        for service, method, path, payload, nobody, roles in requests:
            if role not in roles:
                continue  # the role matrix (test_authorization_matrix) covers 403s
            http = staff.client(getattr(stack, service), role, district, sub)
            response = await http.request(method, path, json=payload)
            checks += 1
            if inside:
                ok = response.status_code in (200, 201)
            else:
                ok = response.status_code == 404
                if ok and nobody is not None:
                    unknown = await http.request(nobody[0], nobody[1], json=nobody[2])
                    ok = unknown.status_code == 404 and unknown.json()["code"] == response.json()["code"]
            if not ok:
                wrong.append((label, method, path.split("/")[2], response.status_code))
    print(f"\narea matrix: {checks} checks over {len(requests)} person endpoints x {len(callers(person))} callers")
    assert checks >= 25 and not wrong, wrong


async def test_revoking_another_areas_consent_is_a_404_and_changes_nothing(staff: Staff, stack: Endpoints) -> None:
    rng = random.Random(412)
    [person] = [p for p in residents(rng, 10) if p.district == "310107"][:1]
    officer = staff.client(stack.eligibility, "registry_officer")
    await import_registry(officer, [person])
    consent = (await officer.post("/v1/consents", json={"national_id": person.patient.national_id,
                                                        "signed_on": "2026-01-02"})).json()
    for role, district, sub in (("clerk", "310110", "310110001"), ("registry_officer", "310110", None)):
        response = await staff.client(stack.eligibility, role, district, sub).post(
            f"/v1/consents/{consent['consent_id']}/revoke", json={"revoked_on": "2026-02-01"})
        assert response.status_code == 404 and response.json()["code"] == "consent_not_found", response.text
    looked = (await officer.post("/v1/persons:lookup", json={"national_id": person.patient.national_id})).json()
    assert [c["revoked_on"] for c in looked["consents"]] == [None]
    assert httpx  # the clients are httpx.AsyncClient (closed by the fixture)
