"""JSON Schemas for events: ``schemas/events/<type>.v<version>.json`` describes an event's data,
``schemas/events/envelope.v1.json`` the envelope. A published schema is never edited: a new
version is added instead, with an upcaster."""

from __future__ import annotations

import json
from dataclasses import fields
from functools import lru_cache
from importlib import resources
from typing import Any

import jsonschema_rs

from cairn.kernel.envelope import Event
from cairn.kernel.errors import CairnError


class SchemaViolation(CairnError):
    """The code tried to emit an event its schema does not allow (a bug, not bad input)."""

    status = 500
    code = "event_schema_violation"


def _events_dir() -> Any:
    return resources.files("cairn.schemas").joinpath("events")


@lru_cache(maxsize=None)
def known_schemas() -> dict[str, dict[str, Any]]:
    """Every event schema by file stem (``run.created.v1``)."""
    schemas = {}
    for entry in _events_dir().iterdir():
        if entry.name.endswith(".json"):
            schemas[entry.name[: -len(".json")]] = json.loads(entry.read_text())
    return schemas


@lru_cache(maxsize=None)
def current_version(event_type: str) -> int:
    """The version new events of this type are written at: the highest schema there is. Older
    versions stay readable: each consumer reads them as they were (a newer version may only add
    optional fields, or it comes with an upcaster)."""
    versions = [int(stem.rsplit(".v", 1)[1]) for stem in known_schemas() if stem.rsplit(".v", 1)[0] == event_type]
    return max(versions, default=1)


# The envelope's stored fields (``Event.to_dict`` without the deep copy): what its schema checks.
ENVELOPE_FIELDS = tuple(f.name for f in fields(Event) if f.name not in ("traceparent", "idempotency_key", "leader_term"))


def _schema(stem: str) -> dict[str, Any]:
    schema = known_schemas().get(stem)
    if schema is None:
        raise SchemaViolation(f"no schema for event {stem}; add schemas/events/{stem}.json")
    return schema


@lru_cache(maxsize=None)
def _validator(stem: str) -> Any:
    """The compiled validator of one schema, which is itself checked against its metaschema once.
    ``jsonschema_rs`` alone: the pure-Python ``jsonschema`` costs each process about a second to
    import where its format extras are installed (their grammar is built at import)."""
    schema = _schema(stem)
    try:
        jsonschema_rs.meta.validate(schema)
    except jsonschema_rs.ValidationError as err:
        raise SchemaViolation(f"schemas/events/{stem}.json is not a valid JSON Schema: {err.message}") from None
    return jsonschema_rs.validator_for(schema)


def validate_event(event: Event) -> None:
    """Raise SchemaViolation unless the envelope and the data match their schemas. Every event a
    command appends passes here: a compiled validator (tens of microseconds); the first error by
    position in the instance is the one named."""
    envelope = {name: getattr(event, name) for name in ENVELOPE_FIELDS}
    for stem, instance in (
        ("envelope.v1", envelope),
        (f"{event.type}.v{event.version}", event.data),
    ):
        validator = _validator(stem)
        if validator.is_valid(instance):
            continue
        errors = sorted(validator.iter_errors(instance), key=lambda e: [str(p) for p in e.instance_path])
        if errors:
            first = errors[0]
            where = "/".join(str(p) for p in first.instance_path) or "(root)"
            raise SchemaViolation(f"event {stem} breaks its schema at {where}: {first.message}")
