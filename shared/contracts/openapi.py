"""Request bodies a route reads itself (after checking a signature, or to answer with its own problem codes).

FastAPI cannot see such a body, so the route documents it with `openapi_extra`. A model's JSON Schema keeps its
nested models under `$defs` and points at them with `#/$defs/...`, which inside an OpenAPI document resolves
against the document's root, where nothing is: the schemas here have every reference resolved in place.
"""

from typing import Any

from pydantic import BaseModel

JsonSchema = dict[str, Any]


def inline_schema(model: type[BaseModel] | JsonSchema) -> JsonSchema:
    """The JSON Schema of a model (or a schema with `$defs`) with every `#/$defs/` reference replaced by its target."""
    schema = model.model_json_schema() if isinstance(model, type) else dict(model)
    defs: dict[str, Any] = schema.pop("$defs", {})

    def resolve(node: Any, seen: tuple[str, ...]) -> Any:
        if isinstance(node, list):
            return [resolve(item, seen) for item in node]
        if not isinstance(node, dict):
            return node
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            name = ref.removeprefix("#/$defs/")
            if name in seen:
                raise ValueError(f"{name} refers to itself; a recursive schema cannot be inlined")
            siblings = {k: resolve(v, seen) for k, v in node.items() if k != "$ref"}
            return {**resolve(defs[name], (*seen, name)), **siblings}
        return {k: resolve(v, seen) for k, v in node.items()}

    return resolve(schema, ())  # type: ignore[no-any-return]


def request_body(content: dict[str, type[BaseModel] | JsonSchema], examples: dict[str, Any] | None = None,
                 required: bool = True) -> dict[str, Any]:
    """`openapi_extra` for a route that reads its body itself: {media type: model or schema}, and an example
    body per media type if given."""
    media: dict[str, Any] = {}
    for media_type, schema in content.items():
        media[media_type] = {"schema": inline_schema(schema)}
        if examples and media_type in examples:
            media[media_type]["example"] = examples[media_type]
    return {"requestBody": {"required": required, "content": media}}


PROBLEM_SCHEMA: JsonSchema = {
    "type": "object", "required": ["type", "title", "status", "detail", "code"],
    "description": "RFC 9457 problem details (application/problem+json); `code` is stable, `detail` for people.",
    "properties": {
        "type": {"type": "string"}, "title": {"type": "string"}, "status": {"type": "integer"},
        "detail": {"type": "string"}, "code": {"type": "string"}, "field": {"type": ["string", "null"]},
        "errors": {"type": "array", "items": {"type": "object", "properties": {
            "field": {"type": ["string", "null"]}, "code": {"type": "string"}, "message": {"type": "string"},
            "index": {"type": "integer"}}}},
    },
}
_PROBLEMS = {
    400: "Malformed body: not JSON, a key twice, nested too deep (`malformed_json`, `duplicate_key`, `too_deep`).",
    401: "Missing or invalid credentials: staff token or hospital / bank signature.",
    403: "The caller's role may not do this, or the four-eyes rule forbids it.",
    404: "Not found, or outside the caller's area (the same answer either way).",
    409: "Conflicts with what is stored (same id with another body, an illegal state change).",
    413: "The body or the batch is larger than allowed.",
    415: "The body is not application/json (or the other media type the operation names).",
    422: "The input is invalid; nothing was stored. `errors` names each field.",
    503: "A dependency (the database) is unavailable; retry after `Retry-After` seconds.",
}


def document_problems(document: dict[str, Any]) -> dict[str, Any]:
    """Add the problem responses each operation can give to a FastAPI OpenAPI document (in place).

    Every operation under /v1 or /ops may answer 400, 401, 404, 422 and 503; staff operations (bearer security)
    403 too; operations with a body 409, 413 and 415. FastAPI's own 422 (a plain JSON validation error) is
    replaced: every error here is application/problem+json.
    """
    document.setdefault("components", {}).setdefault("schemas", {})["Problem"] = PROBLEM_SCHEMA
    document["components"]["schemas"].pop("HTTPValidationError", None)
    document["components"]["schemas"].pop("ValidationError", None)
    for path, operations in document.get("paths", {}).items():
        for method, operation in operations.items():
            statuses = {503} if path == "/readyz" else set()
            if path.startswith(("/v1/", "/ops/")):
                statuses |= {400, 401, 404, 422, 503}
                if operation.get("security"):
                    statuses.add(403)
                if method in ("post", "put", "patch"):
                    statuses |= {403, 409, 413, 415}
            responses = operation.setdefault("responses", {})
            for status in sorted(statuses):
                responses[str(status)] = {"description": _PROBLEMS[status], "content": {
                    "application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}}
    return document
