"""Decisions that need no run state: a gate on metrics, and what a new run does while others of the
same pipeline are in progress (the concurrency policy). Pure functions: the engine gathers the
numbers (the candidate's metrics, the champion's runs) and records what these return as events.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cairn.kernel.errors import InvalidInput
from cairn.pipelines.expr import ExpressionError, evaluate, references, to_source
from cairn.pipelines.spec import CONCURRENCY, Gate


@dataclass(frozen=True)
class GateDecision:
    """passed, and every number compared (``comparisons``: one entry per condition and one for
    the champion), so the event of record says why, not only what."""

    passed: bool
    comparisons: tuple[dict[str, Any], ...]
    message: str


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values)


def _seed_values(runs: Sequence[Mapping[str, Any]], metric: str, who: str) -> list[float]:
    values = []
    for run in runs:
        value = run.get(metric)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise InvalidInput(f"the {who}'s runs must each have a number for metric {metric!r}; one has {value!r}",
                               details={"field": metric})
        values.append(float(value))
    return values


def _champion(gate: Gate, candidate: Sequence[Mapping[str, Any]],
              champion: Sequence[Mapping[str, Any]] | None) -> tuple[bool, dict[str, Any], str]:
    spec = gate.champion
    assert spec is not None
    entry: dict[str, Any] = {"kind": "champion", "model": f"{spec.model}@{spec.alias}", "metric": spec.metric,
                             "direction": spec.direction, "min_improvement": spec.min_improvement,
                             "min_seeds": spec.min_seeds, "candidate_seeds": len(candidate)}
    cand = _seed_values(candidate, spec.metric, "candidate")
    entry["candidate"] = _mean(cand) if cand else None
    if len(cand) < spec.min_seeds:
        entry["passed"] = False
        return False, entry, f"the candidate has {len(cand)} seed run(s) of {spec.metric}; the gate needs {spec.min_seeds}"
    if not champion:
        entry.update(champion=None, champion_seeds=0, improvement=None, passed=True)
        return True, entry, f"no champion behind {spec.model}@{spec.alias} yet: the first candidate passes"
    champ = _seed_values(champion, spec.metric, "champion")
    entry.update(champion=_mean(champ), champion_seeds=len(champ))
    if len(champ) < spec.min_seeds:
        entry.update(improvement=None, passed=False)
        return False, entry, f"the champion has {len(champ)} seed run(s) of {spec.metric}; the gate needs {spec.min_seeds}"
    gain = entry["candidate"] - entry["champion"]
    improvement = gain if spec.direction == "max" else -gain
    passed = improvement >= spec.min_improvement
    entry.update(improvement=improvement, passed=passed)
    verb = "beats" if passed else "does not beat"
    return passed, entry, (f"{spec.metric} {entry['candidate']:.6g} {verb} the champion's {entry['champion']:.6g} "
                           f"by {spec.min_improvement:g} ({spec.direction}imise; improvement {improvement:.6g})")


def decide_gate(gate: Gate, candidate_metrics: Mapping[str, Any],
                champion_metrics_by_seed: Sequence[Mapping[str, Any]] | None, *,
                params: Mapping[str, Any], steps: Mapping[str, Mapping[str, Mapping[str, Any]]],
                candidate_metrics_by_seed: Sequence[Mapping[str, Any]] | None = None) -> GateDecision:
    """Decide ``gate`` for the candidate (``candidate_metrics``: the metrics of the gate's step,
    ``candidate_metrics_by_seed``: one metrics map per seed run, default that one) against the
    champion (one metrics map per run behind the alias, None or empty when the alias is not set).
    Every condition is evaluated (not only up to the first that fails), so the event lists them
    all; a condition that cannot be decided (a missing metric) fails the gate, saying which."""
    context = {name: dict(value) for name, value in steps.items()}
    context[gate.step] = {**context.get(gate.step, {}), "metrics": dict(candidate_metrics)}
    comparisons: list[dict[str, Any]] = []
    failures: list[str] = []
    for condition in gate.conditions:
        source = to_source(condition)
        values: dict[str, Any] = {}
        for ref in references(condition):
            try:
                values[to_source(ref)] = evaluate(ref, dict(params), context)
            except ExpressionError:
                values[to_source(ref)] = None
        try:
            passed = bool(evaluate(condition, dict(params), context))
            error = None
        except ExpressionError as err:
            passed, error = False, err.message
        comparisons.append({"kind": "condition", "condition": source, "values": values, "passed": passed,
                            **({"error": error} if error else {})})
        if not passed:
            failures.append(f"{source} is not met" + (f" ({error})" if error else ""))
    message = ""
    if gate.champion is not None:
        seeds = candidate_metrics_by_seed if candidate_metrics_by_seed is not None else [candidate_metrics]
        passed, entry, message = _champion(gate, seeds, champion_metrics_by_seed)
        comparisons.append(entry)
        if not passed:
            failures.append(message)
    if failures:
        return GateDecision(False, tuple(comparisons), "; ".join(failures))
    return GateDecision(True, tuple(comparisons), message or "every condition is met")


@dataclass(frozen=True)
class ConcurrencyDecision:
    """``start``: the new run starts now; ``cancel``: runs to cancel first (cancel-older);
    ``wait_for``: runs it queues behind (queue); ``reason`` for the record."""

    start: bool
    cancel: tuple[str, ...] = ()
    wait_for: tuple[str, ...] = ()
    reason: str = ""


def decide_concurrency(policy: str, in_progress: Sequence[str]) -> ConcurrencyDecision:
    """What a new run of a pipeline does given the ids of its runs in progress, oldest first:
    ``queue`` waits for them, ``cancel-older`` cancels them and starts, ``skip`` does not start."""
    if policy not in CONCURRENCY:
        raise InvalidInput(f"concurrency must be one of {', '.join(CONCURRENCY)}, not {policy!r}",
                           details={"field": "concurrency"})
    running = tuple(in_progress)
    if not running:
        return ConcurrencyDecision(True, reason="no other run of this pipeline is in progress")
    if policy == "queue":
        return ConcurrencyDecision(False, wait_for=running, reason=f"queued behind {', '.join(running)}")
    if policy == "cancel-older":
        return ConcurrencyDecision(True, cancel=running, reason=f"cancels {', '.join(running)}")
    return ConcurrencyDecision(False, reason=f"skipped: {', '.join(running)} in progress")
