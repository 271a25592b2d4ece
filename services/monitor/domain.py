"""Monitor aggregates as pure functions: commands check state and return one event (type, data);
``evolve_*`` folds an event into state. No I/O here.

Aggregates (project-scoped):
- alert_rule (id = a new id): a rule on one deployment's windows of one size;
- alert (id = the rule's id): whether the rule is firing, when it last fired, the window it
  last decided on, and the actions it fired that are still owed (until ``alert.action_taken``).
  One subject per rule, so appending a decision expects the rule's last alert sequence: a monitor
  that restarts and decides on the same window again cannot append twice;
- monitor (id = deployment name): the deployment's reference profile;
- profile (id = the profile's digest): a registered profile (content-addressed: once).

Rule decisions use window times, never the wall clock: replaying the same windows decides the same.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from cairn.kernel.commands import Decision
from cairn.kernel.errors import EventOutOfOrder, InvalidInput, NotFound
from cairn.kernel.store import Evolve

State = dict[str, Any] | None

# metric -> the closed-window field it reads (drift and performance live in JSON summaries)
WINDOW_METRICS = ("requests", "errors", "error_rate", "latency_p50_ms", "latency_p95_ms", "latency_p99_ms")
DRIFT_METRICS = ("drift_share", "drift_score")
PERFORMANCE_METRICS = ("accuracy", "precision", "recall", "f1", "roc_auc", "mae", "rmse")
METRICS = (*WINDOW_METRICS, *DRIFT_METRICS, *PERFORMANCE_METRICS)
COMPARISONS: dict[str, Callable[[float, float], bool]] = {
    ">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le}
MAX_PERSISTENCE_N = 100
MAX_COOLDOWN_S = 30 * 86400
RULE_FIELDS = ("name", "metric", "column", "comparison", "threshold", "window", "persistence", "cooldown_s", "action")
_SIZE = re.compile(r"\A\s*(\d+)\s*(s|m|h|d)\s*\Z")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_sizes(text: str) -> dict[str, int]:
    """``"1m,1h,1d"`` -> ``{"1m": 60, "1h": 3600, "1d": 86400}`` (a label per size, smallest first)."""
    sizes: dict[str, int] = {}
    for part in text.split(","):
        match = _SIZE.match(part)
        if not match or int(match.group(1)) <= 0:
            raise ValueError(f"window size {part.strip()!r} is not a duration like 30s, 1m, 1h or 1d")
        seconds = int(match.group(1)) * _UNIT_S[match.group(2)]
        sizes[f"{int(match.group(1))}{match.group(2)}"] = seconds
    if not sizes:
        raise ValueError("give at least one window size (e.g. 1m,1h,1d)")
    return dict(sorted(sizes.items(), key=lambda item: item[1]))


def _bad(message: str, field: str) -> InvalidInput:
    return InvalidInput(message, details={"field": field})


def check_rule(rule: Mapping[str, Any], sizes: Sequence[str]) -> dict[str, Any]:
    """A rule as stored: every field checked (an InvalidInput names the field that is wrong)."""
    name = rule.get("name")
    if not isinstance(name, str) or not 1 <= len(name) <= 200:
        raise _bad("name must be text of 1 to 200 characters", "name")
    metric = rule.get("metric")
    if metric not in METRICS:
        raise _bad(f"metric must be one of {', '.join(METRICS)}, not {metric!r}", "metric")
    column = rule.get("column")
    if metric == "drift_score":
        if not isinstance(column, str) or not 1 <= len(column) <= 256:
            raise _bad("a drift_score rule names the column whose drift score it watches", "column")
    elif column is not None:
        raise _bad(f"only drift_score rules name a column; {metric} is about the whole window", "column")
    comparison = rule.get("comparison")
    if comparison not in COMPARISONS:
        raise _bad(f"comparison must be one of {', '.join(COMPARISONS)}, not {comparison!r}", "comparison")
    threshold = rule.get("threshold")
    if isinstance(threshold, bool) or not isinstance(threshold, int | float) or not math.isfinite(threshold):
        raise _bad(f"threshold must be a finite number, not {threshold!r}", "threshold")
    window = rule.get("window") or next(iter(sizes), None)  # none given: the smallest kept
    if window not in sizes:
        raise _bad(f"window {window!r} is not one the monitor keeps; use one of {', '.join(sizes)}", "window")
    persistence = rule.get("persistence") or {"k": 1, "n": 1}
    k, n = (persistence.get("k"), persistence.get("n")) if isinstance(persistence, Mapping) else (None, None)
    if (isinstance(k, bool) or isinstance(n, bool) or not isinstance(k, int) or not isinstance(n, int)
            or not 1 <= k <= n <= MAX_PERSISTENCE_N):
        raise _bad(f"persistence needs whole numbers 1 <= k <= n <= {MAX_PERSISTENCE_N} (fire when k of the "
                   "last n windows break the threshold)", "persistence")
    cooldown = rule.get("cooldown_s", 300)
    if isinstance(cooldown, bool) or not isinstance(cooldown, int | float) or not 0 <= cooldown <= MAX_COOLDOWN_S:
        raise _bad(f"cooldown_s must be a number of seconds from 0 to {MAX_COOLDOWN_S}", "cooldown_s")
    return {"name": name, "metric": metric, "column": column, "comparison": comparison,
            "threshold": float(threshold), "window": window, "persistence": {"k": k, "n": n},
            "cooldown_s": float(cooldown), "action": check_action(rule.get("action"))}


def check_action(action: Any) -> dict[str, Any] | None:
    if action is None:
        return None
    if isinstance(action, Mapping) and set(action) == {"rollback"} and action["rollback"] is True:
        return {"rollback": True}
    if (isinstance(action, Mapping) and set(action) == {"pipeline"} and isinstance(action["pipeline"], str)
            and re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}", action["pipeline"])):
        return {"pipeline": action["pipeline"]}
    raise _bad('action must be null, {"rollback": true} or {"pipeline": "<pipeline name>"}', "action")


# --- alert_rule aggregate ----------------------------------------------------------------------

def live_rule(state: State, rule_id: str) -> dict[str, Any]:
    if state is None or state["deleted"]:
        raise NotFound(f"alert rule {rule_id!r} does not exist")
    return state


def create_rule(state: State, *, deployment: str, rule: Mapping[str, Any], sizes: Sequence[str]) -> Decision:
    if state is not None:
        raise InvalidInput("this rule id is taken; create the rule again")  # a new id each time: never happens
    return "alert_rule.created", {"deployment": deployment, **check_rule(rule, sizes)}


def update_rule(state: State, *, rule_id: str, deployment: str, changes: Mapping[str, Any],
                sizes: Sequence[str]) -> Decision:
    current = live_rule(state, rule_id)
    if current["deployment"] != deployment:
        raise NotFound(f"alert rule {rule_id!r} does not exist on deployment {deployment!r}")
    unknown = sorted(set(changes) - set(RULE_FIELDS))
    if unknown:
        raise _bad(f"{unknown[0]!r} is not a rule field; change any of {', '.join(RULE_FIELDS)}", unknown[0])
    merged = check_rule({**{f: current[f] for f in RULE_FIELDS}, **changes}, sizes)
    if all(merged[f] == current[f] for f in RULE_FIELDS):
        return None
    return "alert_rule.updated", {"deployment": deployment, **merged}


def delete_rule(state: State, *, rule_id: str, deployment: str) -> Decision:
    current = live_rule(state, rule_id)
    if current["deployment"] != deployment:
        raise NotFound(f"alert rule {rule_id!r} does not exist on deployment {deployment!r}")
    return "alert_rule.deleted", {"deployment": deployment}


def evolve_rule(state: State, event_type: str, data: dict[str, Any]) -> dict[str, Any]:
    if event_type in ("alert_rule.created", "alert_rule.updated"):
        if event_type == "alert_rule.updated" and state is None:
            raise EventOutOfOrder("alert_rule.updated for a rule that was never created")
        return {**data, "deleted": False}
    if state is None:
        raise EventOutOfOrder(f"{event_type} for a rule that was never created")
    return {**state, "deleted": True}


# --- alert aggregate (one per rule) --------------------------------------------------------------

def window_value(rule: Mapping[str, Any], window: Mapping[str, Any]) -> float | None:
    """The number the rule watches in a closed window (None: the window has none, e.g. no
    requests, no reference to drift against, no labels yet)."""
    metric = rule["metric"]
    if metric in WINDOW_METRICS:
        value = window.get(metric)
    elif metric == "drift_share":
        value = (window.get("drift") or {}).get("share")
    elif metric == "drift_score":
        value = ((window.get("drift") or {}).get("columns") or {}).get(rule["column"], {}).get("score")
    else:
        value = (window.get("performance") or {}).get(metric)
    return float(value) if isinstance(value, int | float) and math.isfinite(value) else None


def evaluate(rule: Mapping[str, Any], history: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The rule's verdict on each of its last ``n`` windows (oldest first): value and breached."""
    compare = COMPARISONS[rule["comparison"]]
    out = []
    for window in history[-rule["persistence"]["n"]:]:
        value = window_value(rule, window)
        out.append({"start": window["start"], "end": window["end"], "value": value,
                    "breached": value is not None and compare(value, rule["threshold"])})
    return out


def decide_alert(state: State, *, rule_id: str, rule: Mapping[str, Any],
                 history: Sequence[Mapping[str, Any]]) -> Decision:
    """Fire when k of the last n windows (``history``, oldest first, the newest just closed)
    break the threshold and the rule is not firing (and its cooldown since the last firing has
    passed, in window time); resolve a firing rule when fewer than k do. A window at or before
    the one last decided on decides nothing (a restarted monitor deciding again)."""
    window = history[-1]
    if state is not None and window["end"] <= state["last_window_end"]:
        return None
    verdicts = evaluate(rule, history)
    breaches = sum(1 for v in verdicts if v["breached"])
    k = rule["persistence"]["k"]
    firing = bool(state and state["firing"])
    data = {"rule_id": rule_id, "deployment": rule["deployment"], "name": rule["name"], "metric": rule["metric"],
            "column": rule["column"], "comparison": rule["comparison"], "threshold": rule["threshold"],
            "value": verdicts[-1]["value"], "window": {"size": rule["window"], "start": window["start"],
                                                       "end": window["end"]},
            "persistence": {**rule["persistence"], "breaches": breaches}, "history": verdicts}
    if not firing and breaches >= k:
        last_fired = state["last_fired_end"] if state else None
        if last_fired is not None and window["end"] - last_fired < rule["cooldown_s"]:
            return None
        return "alert.fired", {**data, "action": rule["action"]}
    if firing and breaches < k:
        return "alert.resolved", {**data, "fired_window_end": state["last_fired_end"] if state else None}
    return None


def end_ms(window_end: float) -> int:
    """A fired window's end in whole milliseconds: with the rule id, the alert's name in keys."""
    return int(window_end * 1000)


def owes_action(action: Mapping[str, Any] | None) -> bool:
    """Whether the monitor itself carries the action out: rollbacks. A pipeline action is in
    ``alert.fired`` for the pipelines to act on; nothing here owes it."""
    return bool(action and action.get("rollback"))


def take_action(state: State, *, rule_id: str, window_end: float, outcome: str, detail: str) -> Decision:
    """Record that the action owed for the alert fired on the window ending ``window_end`` was
    carried out (``done``) or refused for good (``failed``). An action no longer owed (recorded
    already, e.g. by a monitor killed before it saw its own event) records nothing."""
    if outcome not in ("done", "failed"):
        raise InvalidInput(f"outcome must be done or failed, not {outcome!r}", details={"field": "outcome"})
    owed = (state or {}).get("owed") or {}
    entry = owed.get(str(end_ms(window_end)))
    if entry is None:
        return None
    return "alert.action_taken", {"rule_id": rule_id, "deployment": entry["deployment"], "window_end": window_end,
                                  "action": entry["action"], "outcome": outcome, "detail": detail[:2000]}


def evolve_alert(state: State, event_type: str, data: dict[str, Any]) -> dict[str, Any]:
    """``owed``: the actions fired and not yet recorded as taken, by fired window end (ms)."""
    state = dict(state or {"firing": False, "last_fired_end": None, "last_window_end": 0.0})
    owed = dict(state.get("owed") or {})
    if event_type == "alert.action_taken":
        owed.pop(str(end_ms(data["window_end"])), None)
        return {**state, "owed": owed}
    state["last_window_end"] = data["window"]["end"]
    if event_type == "alert.fired":
        state["firing"], state["last_fired_end"] = True, data["window"]["end"]
        if owes_action(data["action"]):
            owed[str(end_ms(data["window"]["end"]))] = {"deployment": data["deployment"], "action": data["action"]}
    else:
        state["firing"] = False
    return {**state, "owed": owed}


# --- reference (monitor aggregate) and profiles -----------------------------------------------

def set_reference(state: State, *, deployment: str, digest: str, registered: bool) -> Decision:
    if not registered:
        raise NotFound(f"profile {digest!r} is not registered in this project; POST it to /profiles first",
                       details={"field": "profile"})
    if state is not None and state.get("profile") == digest:
        return None
    return "monitor.reference_set", {"deployment": deployment, "profile": digest}


def evolve_monitor(state: State, event_type: str, data: dict[str, Any]) -> dict[str, Any]:
    return {"profile": data["profile"]}


def register_profile(state: State, *, digest: str, rows: int, columns: int,
                     source: Mapping[str, Any]) -> Decision:
    """A profile is registered once: the same content again is a no-op."""
    if state is not None:
        return None
    return "profile.registered", {"digest": digest, "rows": rows, "columns": columns, "source": dict(source)}


def evolve_profile(state: State, event_type: str, data: dict[str, Any]) -> dict[str, Any]:
    return dict(data)


EVOLVERS: dict[str, Evolve] = {"alert_rule": evolve_rule, "alert": evolve_alert, "monitor": evolve_monitor, "profile": evolve_profile}
