"""MLflow's trace filter syntax and ordering as the metrics service evaluates them (pure
functions, no stack): keys, operators, quoting, errors that name the problem, and NPMI."""

from __future__ import annotations

import math

import pytest

from cairn.kernel.errors import InvalidInput
from cairn.services.metrics.traces_api import npmi
from cairn.services.metrics.traces_domain import evolve
from cairn.services.metrics.traces_search import matches, parse_filter, parse_order

INFO = {"trace_id": "tr-1", "state": "OK", "request_time_ms": 2000, "execution_ms": 150,
        "tags": {"env": "prod", "mlflow.traceName": "plan", "my key": "x"}, "metadata": {"mlflow.sourceRun": "r1"},
        "run_ids": ["r2"], "request_preview": "why stones?", "response_preview": None}
SPANS = [{"name": "plan", "attributes": {"q": "\"what is a cairn\""}}, {"name": "tool", "attributes": {}}]


@pytest.mark.parametrize(("text", "expected"), [
    ("status = 'OK'", True),
    ("attributes.status != 'OK'", False),
    ("trace.status IN ('ERROR', 'OK')", True),
    ("timestamp_ms > 1000 AND execution_time < 200", True),
    ("execution_time_ms >= 151", False),
    ("tags.env = 'prod' and tags.`my key` = 'x'", True),
    ("tags.env LIKE 'pr%'", True),
    ("tags.env ILIKE 'PR%'", True),
    ("tags.env LIKE 'PR%'", False),
    ("tags.missing != 'x'", True),
    ("metadata.`mlflow.sourceRun` = 'r1'", True),
    ("attribute.run_id = 'r1'", True),
    ("run_id = 'r2'", True),
    ("run_id = 'r3'", False),
    ("name = 'plan'", True),
    ("span.name = 'tool'", True),
    ("span.name = 'other'", False),
    ("trace.text LIKE '%cairn%'", True),
    ("trace.text ILIKE '%STONES%'", True),
    ("trace.text LIKE '%granite%'", False),
    ("tags.env = 'it''s'", False),
])
def test_filters_match_as_mlflow_reads_them(text: str, expected: bool) -> None:
    assert matches(INFO, parse_filter(text), lambda: SPANS) is expected


@pytest.mark.parametrize("text", [
    "invalid.filter = 'x'", "status", "status = ", "status = 'OK' OR status = 'ERROR'", "trace.text = 'x'",
    "tags.env IN 'prod'", "status = 'OK' tags.env = 'prod'",
])
def test_bad_filters_are_invalid_input_naming_the_problem(text: str) -> None:
    with pytest.raises(InvalidInput, match="Invalid"):
        parse_filter(text)


def test_spans_are_read_only_when_a_clause_needs_them() -> None:
    def no_spans() -> list[dict]:
        raise AssertionError("spans read for an attribute filter")

    assert matches(INFO, parse_filter("status = 'OK' AND tags.env = 'prod'"), no_spans)


def test_order_by_keys_and_default() -> None:
    assert parse_order([]) == [("request_time_ms", True)]
    assert parse_order(["timestamp ASC", "attributes.execution_time DESC"]) == [
        ("request_time_ms", False), ("execution_ms", True)]
    with pytest.raises(InvalidInput, match="order_by"):
        parse_order(["colour DESC"])


def test_npmi_bounds_and_undefined() -> None:
    assert 0.6 < npmi(10, 6, 7, 6) < 0.8
    assert npmi(10, 4, 3, 3) > 0.5
    assert math.isnan(npmi(10, 0, 7, 0))
    assert npmi(10, 5, 5, 0) == -1.0
    assert not math.isnan(npmi(10, 0, 7, 0, smoothing=0.5))


def test_an_override_invalidates_and_its_deletion_restores() -> None:
    state = evolve(None, "trace.recorded", {"trace_id": "tr-1", "experiment_id": "e"})
    state = evolve(state, "trace.assessment_set", {"trace_id": "tr-1", "assessment": {
        "assessment_id": "a-1", "assessment_name": "q", "valid": True}})
    state = evolve(state, "trace.assessment_set", {"trace_id": "tr-1", "assessment": {
        "assessment_id": "a-2", "assessment_name": "q2", "valid": True, "overrides": "a-1"}})
    assert state["assessments"]["a-1"]["valid"] is False
    state = evolve(state, "trace.assessment_deleted", {"trace_id": "tr-1", "assessment_id": "a-2"})
    assert state["assessments"]["a-1"]["valid"] is True and "a-2" not in state["assessments"]
