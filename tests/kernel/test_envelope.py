"""The envelope round-trips through the log's wire format and is checked against its schema."""

from __future__ import annotations

import pytest

from cairn.kernel.envelope import H_MSG_ID, H_TRACEPARENT, Event
from cairn.kernel.schemas import SchemaViolation, validate_event


def _event(**over: object) -> Event:
    base = dict(type="run.tag_set", project="demo", aggregate="run", aggregate_id="abc",
                data={"key": "k", "value": "v"}, actor="alice")
    base.update(over)
    return Event(**base)  # type: ignore[arg-type]


def test_round_trip_through_the_wire_format() -> None:
    event = _event(traceparent="00-abc-def-01")
    headers = {**event.headers(), H_MSG_ID: "key-1"}
    back = Event.from_message(event.to_json(), 42, headers)
    assert back.sequence == 42 and back.data == event.data and back.id == event.id
    assert back.traceparent == "00-abc-def-01" and back.idempotency_key == "key-1"
    assert event.subject == "cairn.evt.demo.run.abc"
    assert headers[H_TRACEPARENT] == "00-abc-def-01"


def test_schema_violations_are_caught() -> None:
    validate_event(_event())
    with pytest.raises(SchemaViolation, match="value"):
        validate_event(_event(data={"key": "k"}))
    with pytest.raises(SchemaViolation, match="no schema"):
        validate_event(_event(type="run.exploded"))
    with pytest.raises(SchemaViolation):
        validate_event(_event(project="Not Valid"))


def test_every_event_schema_is_a_valid_schema_and_compiles() -> None:
    from cairn.kernel import schemas

    for stem in schemas.known_schemas():
        assert schemas._validator(stem) is not None
    assert not schemas._validator("envelope.v1").is_valid({"type": "run.tag_set"})
    schemas.known_schemas()["broken.v1"] = {"type": "no-such-type"}  # a schema its metaschema refuses
    try:
        with pytest.raises(SchemaViolation, match="broken.v1.json is not a valid JSON Schema"):
            schemas._validator("broken.v1")
    finally:
        del schemas.known_schemas()["broken.v1"]


def test_the_first_error_by_position_is_named() -> None:
    with pytest.raises(SchemaViolation, match="breaks its schema at value"):
        validate_event(_event(data={"key": "k", "value": 5}))
