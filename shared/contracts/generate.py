"""Writes the contract files from the code: `python -m shared.contracts.generate` (make contracts).

contracts/events/<EventType>.schema.json  one JSON Schema per event (envelope + typed data), current version
contracts/events/<EventType>.v<N>.schema.json  an earlier version still readable (shared/contracts/versions.py)
contracts/asyncapi.yaml                   topics, keys and payloads
contracts/openapi/<service>.json          each service's HTTP API
"""

import importlib
import json
from pathlib import Path
from typing import Any

import yaml

from shared.contracts.envelope import Envelope
from shared.contracts.topics import (
    POLICY_PUBLISHED,
    REGISTRY_CONTACT,
    REGISTRY_PAYEE,
    REGISTRY_PERSON,
    TOPIC_EVENTS,
    dlq,
)
from shared.contracts.types import PERSON_REF_PATTERN
from shared.contracts.versions import EARLIER_VERSIONS

CONTRACTS = Path(__file__).resolve().parents[2] / "contracts"
_REGISTRY = ("REGISTRY_KEY, one key for the whole topic (in the envelope's person_ref field), so every event is in "
             "one partition and in order; each entry names its person. An event of the earlier per-person shape "
             "has the person's person_ref")
KEYS = {POLICY_PUBLISHED: "the region's key, region_key(region_code) (in the envelope's person_ref field)",
        REGISTRY_PERSON: _REGISTRY, REGISTRY_PAYEE: _REGISTRY, REGISTRY_CONTACT: _REGISTRY}
SERVICES = ("intake", "eligibility", "calculation", "approval", "disbursement", "notification")


def event_schema(model: type, event_type: str | None = None, name: str | None = None) -> dict[str, Any]:
    """JSON Schema of one event version: the envelope with its `schema_version` and `data` typed by the model."""
    event_type, name = event_type or model.__name__, name or model.__name__
    envelope = Envelope.model_json_schema()
    data = model.model_json_schema(ref_template="#/$defs/{model}")  # type: ignore[attr-defined]
    defs = data.pop("$defs", {})
    envelope["properties"]["event_type"] = {"const": event_type, "type": "string"}
    envelope["properties"]["schema_version"] = {"const": model.schema_version, "type": "integer"}  # type: ignore[attr-defined]
    envelope["properties"]["data"] = data
    envelope["title"] = f"{event_type} v{model.schema_version}"  # type: ignore[attr-defined]
    envelope["description"] = (model.__doc__ or "").strip()
    envelope["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    envelope["$id"] = f"https://medassist.example/contracts/events/{name}.schema.json"
    if defs:
        envelope["$defs"] = defs
    return envelope


def event_schemas() -> dict[str, dict[str, Any]]:
    """File name (without .schema.json) -> schema: every event's current version, then its earlier ones."""
    models = sorted({m for models in TOPIC_EVENTS.values() for m in models}, key=lambda m: m.__name__)
    schemas = {m.__name__: event_schema(m) for m in models}
    for event_type, earlier in sorted(EARLIER_VERSIONS.items()):
        for model in earlier:
            name = f"{event_type}.v{model.schema_version}"
            schemas[name] = event_schema(model, event_type, name)
    return schemas


def asyncapi() -> dict[str, Any]:
    """AsyncAPI 3 document: every topic, its key, the events it carries, and its DLQ."""
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    for topic, models in TOPIC_EVENTS.items():
        messages = {
            m.__name__: {"$ref": f"#/components/messages/{m.__name__}"} for m in models
        }
        channels[topic] = {
            "address": topic,
            "description": f"Key: {KEYS.get(topic, 'person_ref')}. Dead letters go to {dlq(topic)}.",
            "messages": messages,
            "bindings": {"kafka": {"partitions": 6, "replicas": 3, "bindingVersion": "0.5.0"}},
        }
        channels[dlq(topic)] = {
            "address": dlq(topic),
            "description": f"Messages of {topic} that could not be applied, with dlq.error.* headers.",
            "messages": {k: dict(v) for k, v in messages.items()},
        }
        operations[f"publish-{topic}"] = {"action": "send", "channel": {"$ref": f"#/channels/{topic}"}}
    components = {
        m.__name__: {
            "name": m.__name__,
            "contentType": "application/json",
            "headers": {"type": "object", "properties": {"traceparent": {"type": "string"}}},
            "bindings": {"kafka": {"key": {"type": "string", "pattern": PERSON_REF_PATTERN},
                                   "bindingVersion": "0.5.0"}},
            "payload": {"$ref": f"./events/{m.__name__}.schema.json"},
            "description": f"schema_version {m.schema_version}"
            + "".join(f"; v{e.schema_version} (./events/{m.__name__}.v{e.schema_version}.schema.json) is still read"
                      for e in EARLIER_VERSIONS.get(m.__name__, ())),
        }
        for models in TOPIC_EVENTS.values()
        for m in models
    }
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "Medical-assistance auto-settlement events",
            "version": "1.0.0",
            "description": "Envelope: event_id (dedupe key), event_type, schema_version, occurred_at, producer, "
            "person_ref (the Kafka key), data. W3C traceparent travels in Kafka headers.",
        },
        "channels": channels,
        "operations": operations,
        "components": {"messages": components},
    }


def openapi(service: str) -> dict[str, Any]:
    module = importlib.import_module(f"{service}.bootstrap")
    return module.create_app().openapi()  # type: ignore[no-any-return]


def dump_json(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def main() -> None:
    (CONTRACTS / "events").mkdir(parents=True, exist_ok=True)
    for name, schema in event_schemas().items():
        (CONTRACTS / "events" / f"{name}.schema.json").write_text(dump_json(schema))
    (CONTRACTS / "asyncapi.yaml").write_text(yaml.safe_dump(asyncapi(), sort_keys=False, allow_unicode=True))
    (CONTRACTS / "openapi").mkdir(exist_ok=True)
    for service in SERVICES:
        try:
            (CONTRACTS / "openapi" / f"{service}.json").write_text(dump_json(openapi(service)))
        except ModuleNotFoundError:
            print(f"skipped {service}: no bootstrap yet")
    print(f"contracts written to {CONTRACTS}")


if __name__ == "__main__":
    main()
