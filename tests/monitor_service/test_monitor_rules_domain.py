"""Alert rules and alert decisions, pure: bad rules name their field, k-of-n persistence,
cooldown in window time, resolving, and a second decision on the same window deciding nothing."""

from __future__ import annotations

from typing import Any

import pytest

from cairn.kernel.errors import InvalidInput, NotFound
from cairn.services.monitor import domain

SIZES = ["2s", "1m"]
RULE = {"name": "slow", "metric": "latency_p99_ms", "column": None, "comparison": ">", "threshold": 100,
        "window": "2s", "persistence": {"k": 2, "n": 3}, "cooldown_s": 10, "action": None}


def rule(**kw: Any) -> dict[str, Any]:
    decision = domain.create_rule(None, deployment="fraud", rule={**RULE, **kw}, sizes=SIZES)
    assert decision is not None
    return domain.evolve_rule(None, *decision)


def window(start: float, p99: float | None, size: float = 2) -> dict[str, Any]:
    return {"start": start, "end": start + size, "latency_p99_ms": p99, "requests": 1, "errors": 0,
            "error_rate": 0.0, "drift": None, "performance": None}


def decide(state: dict[str, Any] | None, history: list[dict[str, Any]], **kw: Any) -> Any:
    return domain.decide_alert(state, rule_id="r1", rule={**rule(**kw)}, history=history)


@pytest.mark.parametrize(("change", "field"), [
    ({"metric": "latency_p42"}, "metric"),
    ({"comparison": "=="}, "comparison"),
    ({"threshold": float("nan")}, "threshold"),
    ({"threshold": "high"}, "threshold"),
    ({"window": "5m"}, "window"),
    ({"persistence": {"k": 3, "n": 2}}, "persistence"),
    ({"persistence": {"k": 0, "n": 2}}, "persistence"),
    ({"cooldown_s": -1}, "cooldown_s"),
    ({"column": "amount"}, "column"),
    ({"metric": "drift_score", "column": None}, "column"),
    ({"action": {"rollback": False}}, "action"),
    ({"action": {"pipeline": "has space"}}, "action"),
    ({"name": ""}, "name"),
])
def test_a_bad_rule_names_the_field_to_fix(change: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidInput) as err:
        domain.create_rule(None, deployment="fraud", rule={**RULE, **change}, sizes=SIZES)
    assert err.value.details["field"] == field


def test_a_window_that_is_not_kept_is_refused_with_the_sizes_that_are() -> None:
    with pytest.raises(InvalidInput, match="use one of 2s, 1m"):
        domain.create_rule(None, deployment="fraud", rule={**RULE, "window": "1h"}, sizes=SIZES)


def test_update_merges_and_rechecks_and_a_same_update_is_a_noop() -> None:
    state = rule()
    decision = domain.update_rule(state, rule_id="r1", deployment="fraud", changes={"threshold": 50}, sizes=SIZES)
    assert decision is not None and decision[1]["threshold"] == 50.0 and decision[1]["metric"] == "latency_p99_ms"
    assert domain.update_rule(state, rule_id="r1", deployment="fraud", changes={"threshold": 100}, sizes=SIZES) is None
    with pytest.raises(InvalidInput):
        domain.update_rule(state, rule_id="r1", deployment="fraud", changes={"window": "9d"}, sizes=SIZES)
    with pytest.raises(NotFound):
        domain.update_rule(state, rule_id="r1", deployment="other", changes={"threshold": 1}, sizes=SIZES)
    deleted = domain.evolve_rule(state, *domain.delete_rule(state, rule_id="r1", deployment="fraud"))  # type: ignore[misc]
    with pytest.raises(NotFound):
        domain.delete_rule(deleted, rule_id="r1", deployment="fraud")


def test_fires_when_k_of_the_last_n_windows_breach_and_carries_the_numbers() -> None:
    history = [window(0, 150), window(2, 50)]
    assert decide(None, history) is None  # one of the last two: below k=2
    history.append(window(4, 120))
    decision = decide(None, history)
    assert decision is not None
    kind, data = decision
    assert kind == "alert.fired"
    assert data["value"] == 120 and data["threshold"] == 100 and data["window"] == {"size": "2s", "start": 4, "end": 6}
    assert data["persistence"] == {"k": 2, "n": 3, "breaches": 2}
    assert [h["breached"] for h in data["history"]] == [True, False, True]


def test_a_firing_rule_resolves_when_fewer_than_k_breach_and_not_twice() -> None:
    history = [window(0, 150), window(2, 150), window(4, 150)]
    state = domain.evolve_alert(None, *decide(None, history[:2]))
    assert state["firing"]
    assert decide(state, history) is None  # still breaching: no second firing
    history += [window(6, 10), window(8, 10)]
    decision = decide(state, history)
    assert decision is not None and decision[0] == "alert.resolved"
    assert decision[1]["fired_window_end"] == 4


def test_the_same_window_decided_again_decides_nothing() -> None:
    """A monitor restarted between deciding a window and dropping it from its queue decides again."""
    history = [window(0, 150), window(2, 150)]
    state = domain.evolve_alert(None, *decide(None, history))
    assert decide(state, history) is None
    assert decide(state, history[:1]) is None


def test_cooldown_counts_window_time_since_the_last_firing() -> None:
    one = {"persistence": {"k": 1, "n": 1}, "cooldown_s": 10}
    state = domain.evolve_alert(None, *decide(None, [window(0, 150)], **one))  # fired at end 2
    state = domain.evolve_alert(state, *decide(state, [window(2, 10)], **one))  # resolved
    assert not state["firing"]
    assert decide(state, [window(4, 150)], **one) is None  # 6 - 2 < 10
    decision = decide(state, [window(12, 150)], **one)  # 14 - 2 >= 10
    assert decision is not None and decision[0] == "alert.fired"


def test_a_window_without_the_value_does_not_breach() -> None:
    decision = decide(None, [window(0, None)], persistence={"k": 1, "n": 1})
    assert decision is None


def test_drift_and_performance_metrics_read_the_window_summaries() -> None:
    drifted = {**window(0, 1), "drift": {"share": 0.6, "columns": {"amount": {"score": 0.3}}},
               "performance": {"accuracy": 0.7}}
    assert domain.window_value(rule(metric="drift_share"), drifted) == 0.6
    assert domain.window_value(rule(metric="drift_score", column="amount"), drifted) == 0.3
    assert domain.window_value(rule(metric="accuracy"), drifted) == 0.7
    assert domain.window_value(rule(metric="drift_score", column="other"), drifted) is None


def test_window_sizes_parse_and_refuse_nonsense() -> None:
    assert domain.parse_sizes("1d, 1m,1h") == {"1m": 60, "1h": 3600, "1d": 86400}
    assert domain.parse_sizes("2s,10s") == {"2s": 2, "10s": 10}
    for bad in ("", "1w", "0s", "m"):
        with pytest.raises(ValueError):
            domain.parse_sizes(bad)


def test_a_rollback_is_owed_from_the_firing_until_action_taken_records_it() -> None:
    fired = decide(None, [window(0, 150), window(2, 150)], action={"rollback": True})
    assert fired is not None and fired[0] == "alert.fired"
    state = domain.evolve_alert(None, *fired)
    assert state["owed"] == {"4000": {"deployment": "fraud", "action": {"rollback": True}}}

    taken = domain.take_action(state, rule_id="r1", window_end=4.0, outcome="failed", detail="409: nothing")
    assert taken == ("alert.action_taken", {"rule_id": "r1", "deployment": "fraud", "window_end": 4.0,
                                            "action": {"rollback": True}, "outcome": "failed",
                                            "detail": "409: nothing"})
    state = domain.evolve_alert(state, *taken)
    assert state["owed"] == {} and state["firing"] and state["last_window_end"] == 4.0
    # recorded once: a monitor that repeats the action after a kill records nothing more
    assert domain.take_action(state, rule_id="r1", window_end=4.0, outcome="done", detail="") is None


def test_pipeline_actions_and_no_action_are_not_owed_by_the_monitor() -> None:
    for action in (None, {"pipeline": "retrain"}):
        fired = decide(None, [window(0, 150), window(2, 150)], action=action)
        assert fired is not None
        state = domain.evolve_alert(None, *fired)
        assert state["owed"] == {}
        assert domain.take_action(state, rule_id="r1", window_end=4.0, outcome="done", detail="") is None


def test_an_outcome_other_than_done_or_failed_is_refused() -> None:
    with pytest.raises(InvalidInput, match="done or failed"):
        domain.take_action(None, rule_id="r1", window_end=4.0, outcome="pending", detail="")
