"""Every `$ref` in a service's OpenAPI document points at something in that document (clients and fuzzers
cannot build a body from a dangling reference)."""

import json
from typing import Any

import pytest

from shared.contracts.generate import CONTRACTS, SERVICES


def references(node: Any) -> list[str]:
    if isinstance(node, dict):
        own = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return own + [ref for value in node.values() for ref in references(value)]
    if isinstance(node, list):
        return [ref for item in node for ref in references(item)]
    return []


def resolve(document: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), f"{ref} is not a reference inside the document"
    node: Any = document
    for part in ref[2:].split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        assert isinstance(node, dict) and part in node, f"{ref} points at nothing"
        node = node[part]
    return node


@pytest.mark.parametrize("service", SERVICES)
def test_every_reference_resolves(service: str) -> None:
    document = json.loads((CONTRACTS / "openapi" / f"{service}.json").read_text())
    for ref in set(references(document)):
        resolve(document, ref)
