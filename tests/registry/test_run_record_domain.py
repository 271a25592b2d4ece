"""The run record's rules as pure domain functions: sections once, seeds key by key."""

from __future__ import annotations

import pytest

from cairn.kernel.errors import Conflict, InvalidInput, NotFound, PayloadTooLarge
from cairn.services.registry.domain import evolve_run
from cairn.services.registry.run_record import record_environment


def _run() -> dict:
    return evolve_run(None, "run.created", {"name": "r", "status": "running", "params": {}, "tags": {},
                                            "description": "", "experiment_id": "e"})


def _record(state: dict, **kw: object) -> object:
    args = {"environment": None, "code": None, "command": None, "seeds": None, **kw}
    return record_environment(state, run_id="r1", **args)


def test_first_record_emits_every_section() -> None:
    event = _record(_run(), environment={"python": {"version": "3.11"}}, command=["python", "t.py"],
                    code={"archive_digest": "a" * 64}, seeds={"seed": 1})
    assert event == ("run.environment_recorded", {"environment": {"python": {"version": "3.11"}},
                                                  "code": {"archive_digest": "a" * 64},
                                                  "command": ["python", "t.py"], "seeds": {"seed": 1}})


def test_same_record_again_is_a_no_op_and_a_different_one_conflicts() -> None:
    state = _run()
    _, data = _record(state, environment={"x": 1, "y": [1, 2]})
    state = evolve_run(state, "run.environment_recorded", data)
    assert _record(state, environment={"y": [1, 2], "x": 1}) is None
    with pytest.raises(Conflict, match="already has a recorded environment"):
        _record(state, environment={"x": 2})


def test_missing_sections_can_be_added_later() -> None:
    state = evolve_run(_run(), "run.environment_recorded", {"code": {"commit": "c1"}})
    assert _record(state, code={"commit": "c1"}, environment={"x": 1}) == (
        "run.environment_recorded", {"environment": {"x": 1}})


def test_seeds_add_key_by_key_and_never_change() -> None:
    state = evolve_run(_run(), "run.environment_recorded", {"seeds": {"seed": 1}})
    assert _record(state, seeds={"seed": 1, "data_seed": 5}) == ("run.environment_recorded",
                                                                 {"seeds": {"data_seed": 5}})
    with pytest.raises(Conflict, match="seeds are immutable"):
        _record(state, seeds={"seed": 2})


def test_empty_record_unknown_run_and_oversized_record_are_refused() -> None:
    with pytest.raises(InvalidInput):
        _record(_run())
    with pytest.raises(NotFound):
        record_environment(None, run_id="nope", environment={"x": 1}, code=None, command=None, seeds=None)
    with pytest.raises(PayloadTooLarge, match="inline git diff"):
        _record(_run(), code={"diff": "x" * (800 * 1024)})


def test_seed_names_are_bounded() -> None:
    with pytest.raises(InvalidInput, match="seed names"):
        _record(_run(), seeds={"s" * 251: 1})
