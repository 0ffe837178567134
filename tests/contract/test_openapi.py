"""Each service's committed OpenAPI document is what the code serves."""

import json

import pytest

from shared.contracts.generate import CONTRACTS, SERVICES, openapi


@pytest.mark.parametrize("service", SERVICES)
def test_committed_openapi_matches_the_code(service: str) -> None:
    committed = json.loads((CONTRACTS / "openapi" / f"{service}.json").read_text())
    assert committed == json.loads(json.dumps(openapi(service))), "run `make contracts` and commit the result"


@pytest.mark.parametrize("service", SERVICES)
def test_every_operation_documents_problem_responses_or_auth(service: str) -> None:
    document = openapi(service)
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            assert operation.get("summary") or operation.get("description"), f"{method} {path} has no docstring"
