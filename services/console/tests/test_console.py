"""The console's own endpoints: the development sign-in (refused outside development), the pass-through's
limits and outage answer, and the headers that keep the pages on this origin."""

import httpx
import pytest
from console.app import LOCAL_TRACE_SEARCH, create_app
from console.config import ConsoleSettings

from shared.service import token_verifier
from shared.testing import free_port, production_secrets


def client(**settings: str) -> httpx.AsyncClient:
    app = create_app(ConsoleSettings(**settings))  # type: ignore[arg-type]
    app.state.http = httpx.AsyncClient(timeout=2)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://console")


async def test_dev_sign_in_mints_a_token_for_the_chosen_role_and_area() -> None:
    async with client() as http:
        response = await http.post("/console/dev-sign-in", json={
            "role": "clerk", "district_code": "310110", "subdistrict_code": "310110001", "subject": "clerk-zhang"})
        assert response.status_code == 200, response.text
        principal = token_verifier(ConsoleSettings()).verify(response.json()["token"])
        assert (principal.subject, principal.role.value, principal.district_code, principal.subdistrict_code) == (
            "clerk-zhang", "clerk", "310110", "310110001")
        reviewer = await http.post("/console/dev-sign-in", json={
            "role": "district_reviewer", "district_code": "310110", "subdistrict_code": "310110001", "subject": "li"})
        assert token_verifier(ConsoleSettings()).verify(reviewer.json()["token"]).subdistrict_code is None
        config = (await http.get("/console/config")).json()
        assert config == {"environment": "development", "dev_sign_in": True, "oidc": None,
                          "trace_search_url": LOCAL_TRACE_SEARCH}  # the local Zipkin (make traces)


@pytest.mark.parametrize(("body", "field"), [
    ({"role": "clerk", "district_code": "310110", "subject": "x"}, "subdistrict_code"),
    ({"role": "district_reviewer", "subject": "x"}, "district_code"),
    ({"role": "clerk", "district_code": "31011", "subdistrict_code": "310110001", "subject": "x"}, "district_code"),
    ({"role": "root", "subject": "x"}, "role"),
    ({"role": "ops", "subject": "x y"}, "subject"),
])
async def test_dev_sign_in_refuses_incomplete_or_bad_input(body: dict[str, str], field: str) -> None:
    async with client() as http:
        response = await http.post("/console/dev-sign-in", json=body)
        assert response.status_code == 422 and field in (response.json()["field"] or ""), response.text


async def test_outside_development_there_is_no_dev_sign_in_but_the_identity_provider() -> None:
    async with client(environment="production", oidc_authorize_url="https://idp.example/authorize",
                      oidc_client_id="review-desk", **production_secrets(ConsoleSettings)) as http:
        response = await http.post("/console/dev-sign-in", json={"role": "ops", "subject": "intruder"})
        assert response.status_code == 403 and response.json()["code"] == "dev_sign_in_disabled"
        config = (await http.get("/console/config")).json()
        assert config["dev_sign_in"] is False and config["oidc"]["client_id"] == "review-desk"
        assert config["trace_search_url"] is None  # no local Zipkin in production unless TRACE_SEARCH_URL says


async def test_pages_come_from_this_origin_only() -> None:
    async with client() as http:
        page = await http.get("/")
        assert page.status_code == 200 and "医疗救助复核台" in page.text
        assert "default-src 'self'" in page.headers["content-security-policy"]
        assert (await http.get("/static/console.js")).status_code == 200
        for src in ("http://", "https://", "//"):
            assert f'src="{src}' not in page.text and f'href="{src}' not in page.text


@pytest.mark.parametrize("path", ["/api/bank/v1/x", "/api/approval/docs", "/api/approval/metrics",
                                  "/api/approval/v1/../metrics"])
async def test_only_the_staff_apis_pass_through(path: str) -> None:
    async with client() as http:
        assert (await http.get(path)).status_code == 404


async def test_a_service_that_does_not_answer_is_a_503() -> None:
    async with client(approval_url=f"http://127.0.0.1:{free_port()}") as http:
        response = await http.get("/api/approval/v1/cases")
        assert response.status_code == 503 and response.json()["code"] == "service_unavailable"
        assert response.headers["retry-after"]
