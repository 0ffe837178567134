"""Every error is problem+json; validation errors name the field and never echo the input."""

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import BaseModel

from shared.errors import Conflict, DomainError, Forbidden, Invalid, NotFound
from shared.problems import ProblemError, install_problem_handlers, validated, validated_items


class Body(BaseModel):
    national_id: str
    amount: int


DOMAIN: dict[int, type[DomainError]] = {404: NotFound, 409: Conflict, 403: Forbidden, 422: Invalid, 400: DomainError}


def app() -> FastAPI:
    application = FastAPI()
    install_problem_handlers(application)

    @application.post("/things")
    async def things(body: Body) -> dict[str, str]:
        if body.amount == 0:
            raise ProblemError(409, "conflict_here", "explained", field="amount")
        if body.amount == 13:
            raise RuntimeError("secret internals 110101199003074578")
        if body.amount in DOMAIN:
            raise DOMAIN[body.amount]("domain_code", "in the domain's words", field="amount")
        return {"ok": "yes"}

    @application.post("/raw")
    async def raw(data: dict[str, object]) -> dict[str, str]:
        validated(Body, data)
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


@pytest.mark.parametrize(("amount", "status"), [(404, 404), (409, 409), (403, 403), (422, 422), (400, 422)])
def test_domain_errors_become_problems_by_kind(amount: int, status: int) -> None:
    response = client.post("/things", json={"national_id": "x", "amount": amount})
    assert response.status_code == status
    assert response.headers["content-type"] == "application/problem+json"
    assert (response.json()["code"], response.json()["field"]) == ("domain_code", "amount")


def test_a_body_a_route_validates_itself_gets_the_same_422_without_the_value() -> None:
    response = client.post("/raw", json={"national_id": "110101199003074578", "amount": "x"})
    assert (response.status_code, response.json()["code"], response.json()["field"]) == (422, "invalid_input", "amount")
    assert "110101199003074578" not in response.text


def test_a_batch_is_validated_in_one_call_and_its_errors_name_each_bad_item_by_index() -> None:
    good = {"national_id": "110101199003074578", "amount": 1}
    assert validated_items(Body, [good, good], field="items") == [Body(**good), Body(**good)]
    with pytest.raises(ProblemError) as refused:
        validated_items(Body, [good, {**good, "amount": "x"}, good, "not an object", {"amount": 2}], field="items",
                        noun="record", whole="the import")
    problem = refused.value
    assert (problem.status, problem.code, problem.field) == (422, "invalid_input", "items.1.amount")
    assert problem.message == "3 record(s) invalid; the import was refused whole and nothing was stored"
    assert [(e["index"], e["field"], e["code"]) for e in problem.errors or []] == [
        (1, "items.1.amount", "int_parsing"), (3, "items.3", "model_type"), (4, "items.4.national_id", "missing")]
    assert "110101199003074578" not in str(problem.errors) and "not an object" not in str(problem.errors)
