"""Every error is problem+json; validation errors name the field and never echo the input."""

from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import BaseModel

from shared.problems import ProblemError, install_problem_handlers


class Body(BaseModel):
    national_id: str
    amount: int


def app() -> FastAPI:
    application = FastAPI()
    install_problem_handlers(application)

    @application.post("/things")
    async def things(body: Body) -> dict[str, str]:
        if body.amount == 0:
            raise ProblemError(409, "conflict_here", "explained", field="amount")
        if body.amount == 13:
            raise RuntimeError("secret internals 110101199003074578")
        return {"ok": "yes"}

    return application


client = TestClient(app(), raise_server_exceptions=False)


def test_validation_error_names_the_field_without_echoing_the_value() -> None:
    response = client.post("/things", json={"national_id": "110101199003074578", "amount": "x"})
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert (problem["code"], problem["field"]) == ("invalid_input", "amount")
    assert "110101199003074578" not in response.text and '"x"' not in response.text


def test_malformed_json_is_a_400_problem() -> None:
    response = client.post("/things", content=b"{not json", headers={"content-type": "application/json"})
    assert response.status_code == 400 and response.json()["code"] == "malformed_json"


def test_domain_problem_keeps_its_status_code_and_field() -> None:
    response = client.post("/things", json={"national_id": "x", "amount": 0})
    assert response.status_code == 409
    assert {k: response.json()[k] for k in ("code", "detail", "field")} == {
        "code": "conflict_here", "detail": "explained", "field": "amount"}


def test_unexpected_errors_hide_their_details() -> None:
    response = client.post("/things", json={"national_id": "x", "amount": 13})
    assert response.status_code == 500 and response.json()["code"] == "internal_error"
    assert "secret" not in response.text and "110101" not in response.text


def test_unknown_route_and_method_are_problems_too() -> None:
    assert client.get("/nowhere").json()["code"] == "not_found"
    assert client.get("/things").json()["code"] == "method_not_allowed"
