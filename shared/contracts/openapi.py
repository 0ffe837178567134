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
