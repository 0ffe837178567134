"""The envelope every event travels in (DESIGN.md section 3)."""

import re
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, Union
from uuid import UUID

import orjson
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, create_model

from shared.contracts.events import EventData
from shared.contracts.topics import EVENT_TYPES
from shared.contracts.types import PERSON_REF_PATTERN
from shared.contracts.versions import upcast
from shared.ids import new_id

_PERSON_REF = re.compile(PERSON_REF_PATTERN)


class UnknownEventType(ValueError):
    pass


class Envelope(BaseModel):
    """`event_id` is the dedupe key; `person_ref` is the Kafka key, so one person's events stay ordered."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    event_id: UUID
    event_type: str
    schema_version: int = Field(default=1, ge=1)
    occurred_at: datetime
    producer: str
    person_ref: str = Field(pattern=PERSON_REF_PATTERN)
    data: dict[str, Any]

    @classmethod
    def wrap(cls, data: EventData, *, person_ref: str, producer: str, event_id: UUID | None = None) -> "Envelope":
        """Put an event's payload in a new envelope."""
        return cls.wrap_json(type(data), data.model_dump(mode="json"), person_ref=person_ref, producer=producer,
                             event_id=event_id)

    @classmethod
    def wrap_json(cls, event_type: type[EventData], data: dict[str, Any], *, person_ref: str, producer: str,
                  event_id: UUID | None = None) -> "Envelope":
        """Put a payload already in its JSON form (`event_type`'s `model_dump(mode="json")`, the same keys in
        the same order) in a new envelope, without building it as `event_type` first: for a payload made from
        input validated once (intake's received settlements). The caller's tests hold it to the contract.

        The fields are made here, so only the key is checked (the envelope is not validated again)."""
        if not _PERSON_REF.fullmatch(person_ref):
            raise ValueError(f"person_ref must match {PERSON_REF_PATTERN}")
        return cls._trusted(event_id or new_id(), event_type.__name__, event_type.schema_version, datetime.now(UTC),
                            producer, person_ref, data)

    @classmethod
    def _trusted(cls, event_id: UUID, event_type: str, schema_version: int, occurred_at: datetime, producer: str,
                 person_ref: str, data: dict[str, Any]) -> "Envelope":
        """An envelope of fields already known valid: what `model_construct` makes, without its walk over the
        fields' defaults and aliases (2 us, a third of a small event's decode; docs/decisions/0040)."""
        envelope = cls.__new__(cls)
        object.__setattr__(envelope, "__dict__", {
            "event_id": event_id, "event_type": event_type, "schema_version": schema_version,
            "occurred_at": occurred_at, "producer": producer, "person_ref": person_ref, "data": data})
        object.__setattr__(envelope, "__pydantic_fields_set__", set(_FIELDS))
        object.__setattr__(envelope, "__pydantic_extra__", None)
        object.__setattr__(envelope, "__pydantic_private__", None)
        return envelope

    def payload(self) -> EventData:
        """The typed, validated payload in the current version (an older one is upcast); raises for an unknown
        event type or version, or invalid data."""
        model = EVENT_TYPES.get(self.event_type)
        if model is None:
            raise UnknownEventType(self.event_type)
        return model.model_validate(upcast(self.event_type, self.schema_version, model.schema_version, self.data))

    def to_bytes(self) -> bytes:
        """The envelope as JSON, written by orjson from the fields (UUID and datetime natively, UTC as `Z`): the
        same bytes as pydantic's JSON dump at a quarter of the CPU, because `data` is already JSON-safe (`wrap`
        dumps the payload, `from_bytes` reads JSON) and is not walked again (docs/decisions/0028)."""
        return orjson.dumps({"event_id": self.event_id, "event_type": self.event_type,
                             "schema_version": self.schema_version, "occurred_at": self.occurred_at,
                             "producer": self.producer, "person_ref": self.person_ref, "data": self.data},
                            option=orjson.OPT_UTC_Z)

    @classmethod
    def from_bytes(cls, raw: bytes) -> "Envelope":
        """The envelope, its payload not yet validated (`payload()` does that)."""
        return cls.model_validate(orjson.loads(raw))

    @classmethod
    def decode(cls, raw: bytes) -> tuple["Envelope", EventData]:
        """The envelope and its typed payload, as `from_bytes(raw)` and its `payload()` give them and raising what
        they raise, in one validation: an event of a known type in its current version is read by pydantic-core
        from the bytes as that type's envelope (`_CURRENT`). Anything else (an older version to upcast, an
        unknown type, invalid input) takes the two steps, which say why it cannot be read."""
        try:
            typed = _CURRENT.validate_json(raw)
        except ValidationError:
            envelope = cls.from_bytes(raw)
            return envelope, envelope.payload()
        envelope = cls._trusted(typed.event_id, typed.event_type, typed.schema_version, typed.occurred_at,
                                typed.producer, typed.person_ref, orjson.loads(raw)["data"])
        return envelope, typed.data


_FIELDS = frozenset(Envelope.model_fields)


def _current_envelope(model: type[EventData]) -> type[BaseModel]:
    """`Envelope` with `data` typed as `model`, and `event_type` and `schema_version` fixed to its name and its
    current version (the discriminator of `_CURRENT`)."""
    fields: dict[str, Any] = {name: (info.annotation, info) for name, info in Envelope.model_fields.items()}
    version = model.schema_version
    fields["event_type"] = (Literal[model.__name__], ...)
    fields["schema_version"] = (Literal[version], version if version == Envelope.model_fields["schema_version"].default
                                else ...)
    fields["data"] = (model, ...)
    return create_model(f"{model.__name__}Envelope", __config__=Envelope.model_config, **fields)


_CURRENT: TypeAdapter[Any] = TypeAdapter(Annotated[  # type: ignore[arg-type]  # a union made at run time
    Union[tuple(_current_envelope(model) for model in EVENT_TYPES.values())],  # noqa: UP007
    Field(discriminator="event_type")])
