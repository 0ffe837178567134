"""Bodies a route reads itself are documented with every reference resolved (shared.contracts.openapi)."""

import json

from pydantic import BaseModel

from shared.contracts.openapi import inline_schema, request_body
from shared.contracts.types import Category


class Inner(BaseModel):
    category: Category


class Outer(BaseModel):
    inner: Inner
    others: list[Inner]
    maybe: Inner | None = None


def test_references_are_replaced_by_their_targets() -> None:
    schema = inline_schema(Outer)
    assert "$ref" not in json.dumps(schema) and "$defs" not in schema
    assert schema["properties"]["inner"]["properties"]["category"]["enum"] == [c.value for c in Category]
    assert schema["properties"]["others"]["items"]["title"] == "Inner"


def test_request_body_carries_schema_and_example_per_media_type() -> None:
    extra = request_body({"application/json": Inner, "text/csv": {"type": "string"}},
                         examples={"application/json": {"category": "subsistence"}})
    content = extra["requestBody"]["content"]
    assert extra["requestBody"]["required"] is True
    assert content["application/json"]["example"] == {"category": "subsistence"}
    assert content["text/csv"] == {"schema": {"type": "string"}}
