"""Every staff endpoint x every role (and no token, an expired one, one signed with the wrong key)."""

import time
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from simulators.scenario import Endpoints

from shared.security.roles import TOKEN_ROLES
from shared.security.staff_auth import Role, mint_dev_token

pytestmark = pytest.mark.e2e
SECRET = "dev-jwt-secret-change-me-at-least-32-bytes"
ANY = str(uuid.uuid4())
R = Role
# (service, method, path, body, roles allowed)
MATRIX = [
    ("eligibility", "POST", "/v1/registry/import", {"records": []}, {R.registry_officer}),
    ("eligibility", "POST", "/v1/consents", {"national_id": "x", "signed_on": "2026-01-01"},
     {R.registry_officer, R.clerk}),
    ("eligibility", "POST", f"/v1/consents/{ANY}/revoke", {"revoked_on": "2026-01-01"}, {R.registry_officer, R.clerk}),
    ("eligibility", "POST", "/v1/persons:lookup", {"national_id": "x"}, {R.registry_officer, R.ops}),
    ("eligibility", "GET", "/v1/screenings/summary", None, {R.registry_officer, R.ops}),
    ("eligibility", "GET", "/v1/policy-terms", None, {R.registry_officer, R.ops}),
    ("calculation", "GET", "/v1/policies", None, {R.policy_admin, R.clerk, R.district_reviewer, R.ops}),
    ("calculation", "POST", "/v1/policies", {}, {R.policy_admin}),
    ("calculation", "GET", f"/v1/calculations/{ANY}", None, {R.policy_admin, R.clerk, R.district_reviewer, R.ops}),
    ("calculation", "GET", "/v1/recoveries", None, {R.district_reviewer, R.ops}),
    ("calculation", "GET", f"/v1/ledgers/{'a' * 64}", None, {R.policy_admin, R.clerk, R.district_reviewer, R.ops}),
    ("approval", "GET", "/v1/cases", None, {R.clerk, R.district_reviewer, R.ops}),
    ("approval", "GET", f"/v1/cases/{ANY}", None, {R.clerk, R.district_reviewer, R.ops}),
    ("approval", "POST", f"/v1/cases/{ANY}/approve", {}, {R.clerk, R.district_reviewer}),
    ("approval", "POST", f"/v1/cases/{ANY}/reject", {"reason": "data_error"}, {R.clerk, R.district_reviewer}),
    ("approval", "POST", f"/v1/cases/{ANY}/send-back", {"comment": "why"}, {R.district_reviewer}),
    ("approval", "POST", "/v1/cases:batch-approve", {"case_ids": [ANY]}, {R.clerk}),
    ("approval", "GET", "/v1/queues", None, {R.ops, R.district_reviewer}),
    ("disbursement", "GET", "/v1/payments", None, {R.ops, R.district_reviewer}),
    ("disbursement", "GET", f"/v1/payments/by-case/{ANY}", None, {R.ops, R.district_reviewer}),
    ("disbursement", "GET", "/v1/reconciliation", None, {R.ops, R.district_reviewer}),
    ("notification", "GET", "/v1/me/settlements", None, {R.resident}),
    ("notification", "POST", "/v1/residents:lookup", {"national_id": "x"}, {R.clerk}),
    ("notification", "GET", "/v1/messages", None, {R.ops}),
    ("notification", "GET", "/v1/messages/summary", None, {R.ops}),
    ("notification", "GET", "/ops/kafka", None, {R.ops}),
]
AREA = {R.clerk: ("310110", "310110001"), R.district_reviewer: ("310110", None)}
BAD_TOKENS = {
    "no token": None,
    "expired": mint_dev_token(SECRET, "x", R.ops, now=int(time.time()) - 7200),
    "wrong key": mint_dev_token("a-different-signing-key-of-enough-length", "x", R.ops),
    "the system's role": mint_dev_token(SECRET, "x", R.system),  # no person acts as the system
}
CALLERS = sorted(TOKEN_ROLES)


@pytest.fixture(scope="module")
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=30) as client:
        yield client


def token(role: Role) -> str:
    district, sub = AREA.get(role, (None, None))
    subject = "ab" * 32 if role == R.resident else f"{role.value}-matrix"  # a resident's subject: a person_ref
    return mint_dev_token(SECRET, subject, role, district, sub)


async def call(http: httpx.AsyncClient, stack: Endpoints, service: str, method: str, path: str,
               body: object, bearer: str | None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {bearer}"} if bearer else {}
    return await http.request(method, f"{getattr(stack, service)}{path}", json=body, headers=headers)


async def test_every_endpoint_against_every_role(stack: Endpoints, http: httpx.AsyncClient) -> None:
    wrong = []
    checks = 0
    for service, method, path, body, allowed in MATRIX:
        for role in CALLERS:
            response = await call(http, stack, service, method, path, body, token(role))
            checks += 1
            refused = response.status_code in (401, 403)
            if (role in allowed) == refused or response.status_code >= 500:
                wrong.append((service, method, path, role.value, response.status_code))
            assert response.headers["content-type"].startswith("application/"), path
            if refused:
                assert response.headers["content-type"] == "application/problem+json"
                assert response.json()["code"] == "forbidden_role"
        for label, bad in BAD_TOKENS.items():
            response = await call(http, stack, service, method, path, body, bad)
            checks += 1
            if response.status_code != 401:
                wrong.append((service, method, path, label, response.status_code))
    callers = len(CALLERS) + len(BAD_TOKENS)
    print(f"\nauthorization matrix: {len(MATRIX)} endpoints x {callers} callers = {checks} checks")
    assert not wrong, wrong


async def test_hospital_endpoints_refuse_staff_tokens(stack: Endpoints, http: httpx.AsyncClient) -> None:
    for path in ("/v1/settlements", "/v1/summary"):
        response = await http.get(f"{stack.intake}{path}", headers={"Authorization": f"Bearer {token(R.ops)}"})
        assert response.status_code == 401 and response.json()["code"] == "signature_missing"
