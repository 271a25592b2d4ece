"""The pipeline_run aggregate as a pure replay: the issue's scenario (prepare -> train -> evaluate ->
gate -> register -> approval -> promote -> deploy, tests/pipelines/examples/ml.yaml) driven by
``next_actions`` and the commands, every event checked against its schema, and the state rebuilt
from the events coming out the same. No platform: the engine's I/O is played by the test."""

from __future__ import annotations

import copy
from dataclasses import replace
from typing import Any

import pytest
from run_replay import INPUTS, ML, Run, seeds

from cairn.kernel.envelope import Event
from cairn.kernel.errors import Conflict, EventOutOfOrder, Forbidden, InvalidInput, NotFound
from cairn.pipelines.validate import load_pipeline
from cairn.services.pipelines import domain
from cairn.services.pipelines.cache import CacheEntry, cache_entries, cache_key
from cairn.services.pipelines.gates import decide_concurrency, decide_gate


def states(run: Run) -> dict[str, str]:
    return {sid: s["state"] for sid, s in run.state["steps"].items()}  # type: ignore[index]


def test_first_run_passes_the_gate_with_no_champion_and_deploys() -> None:
    run = Run(trigger={"kind": "push", "commit": "a" * 40})
    run.play_to_gate("m1" * 32, auc=0.999)
    assert run.step("gate")["state"] == "running"
    run.gate(seeds(0.999, 0.998, 0.999), champion=None)
    assert run.step("gate")["state"] == "succeeded"
    assert run.step("gate")["comparisons"][1]["champion"] is None
    run.advance()
    run.succeed("register", {"version": 1})
    actions = run.advance()
    # auc >= 0.99 and epochs <= 10: the approval's when: is false; promote runs anyway
    assert run.step("approve")["state"] == "skipped" and run.step("approve")["reason"] == "condition_false"
    assert [a.step for a in actions if a.kind == "start"] == ["promote"]
    run.succeed("promote")
    run.advance()
    run.succeed("deploy")
    run.advance()
    assert run.state["outcome"] == "succeeded" and run.events[-1].type == "pipeline_run.finished"  # type: ignore[index]
    assert run.jobs == ["r1-prepare-1", "r1-train-1", "r1-evaluate-1"]
    assert run.replayed() == run.state


def test_a_worse_model_fails_the_gate_and_nothing_after_it_runs() -> None:
    run = Run(run_id="r2")
    run.play_to_gate("m2" * 32, auc=0.90)
    run.gate(seeds(0.90, 0.91, 0.89), champion=seeds(0.95, 0.95, 0.96))
    gate = run.step("gate")
    assert gate["state"] == "failed" and gate["reason"] == "gate"
    champion = gate["comparisons"][1]
    assert champion["candidate"] == pytest.approx(0.90) and champion["champion"] == pytest.approx(0.9533333)
    assert champion["improvement"] == pytest.approx(-0.0533333) and champion["passed"] is False
    assert gate["comparisons"][0] == {"kind": "condition", "condition": "steps.evaluate.metrics.auc >= params.min_auc",
                                      "values": {"steps.evaluate.metrics.auc": 0.90, "params.min_auc": 0.85},
                                      "passed": True}
    assert "does not beat the champion" in gate["message"]
    run.advance()
    assert {s: states(run)[s] for s in ("register", "approve", "promote", "deploy")} == dict.fromkeys(
        ("register", "approve", "promote", "deploy"), "skipped")
    assert run.step("register")["reason"] == "upstream_failed"
    finished = run.events[-1]
    assert finished.data == {"outcome": "failed", "failed_steps": ["gate"], "message": "step gate failed"}
    assert run.replayed() == run.state


def test_a_better_model_waits_for_approval_viewer_refused_admin_granted() -> None:
    run = Run(run_id="r3")
    run.play_to_gate("m3" * 32, auc=0.97)
    run.gate(seeds(0.97, 0.965, 0.975), champion=seeds(0.95, 0.95, 0.96))
    assert run.step("gate")["state"] == "succeeded"
    run.advance()
    run.succeed("register", {"version": 3})
    run.advance()
    assert run.step("approve")["state"] == "waiting_approval"
    assert run.events[-1].type == "approval.requested" and run.events[-1].data["role"] == "admin"
    assert domain.next_actions(run.state, ML) == []  # waiting: nothing to do
    with pytest.raises(Forbidden, match="needs a admin.*'vic' is a viewer"):
        domain.grant_approval(run.state, step="approve", actor="vic", role="viewer")
    with pytest.raises(Forbidden):
        domain.reject_approval(run.state, step="approve", actor="ed", role="editor")
    with pytest.raises(Conflict, match="not waiting for approval"):
        domain.grant_approval(run.state, step="promote", actor="ada", role="admin")
    run.append(domain.grant_approval(run.state, step="approve", actor="ada", role="admin", comment="ship it"),
               actor="ada")
    assert run.step("approve")["decided_by"] == {"actor": "ada", "role": "admin"}
    with pytest.raises(Conflict):  # granted only while waiting
        domain.grant_approval(run.state, step="approve", actor="ada", role="admin")
    run.advance()
    run.succeed("promote")
    run.advance()
    run.succeed("deploy")
    run.advance()
    assert run.state["outcome"] == "succeeded"  # type: ignore[index]
    assert run.replayed() == run.state


def test_a_rejected_approval_fails_the_run() -> None:
    run = Run(run_id="r4")
    run.play_to_gate("m4" * 32, auc=0.97)
    run.gate(seeds(0.97, 0.97, 0.97), champion=None)
    run.advance()
    run.succeed("register", {"version": 4})
    run.advance()
    run.append(domain.reject_approval(run.state, step="approve", actor="ada", role="admin", comment="no"))
    run.advance()
    assert states(run)["promote"] == "skipped" and run.state["outcome"] == "failed"  # type: ignore[index]


def test_a_failed_job_is_retried_until_its_retries_are_used_up() -> None:
    run = Run(run_id="r5")
    run.advance()
    run.succeed("prepare", {"features": "f" * 64})
    run.advance()
    for attempt in (1, 2, 3):  # train has retries: 2
        assert run.step("train")["state"] == "running" and run.step("train")["attempt"] == attempt
        with pytest.raises(Conflict, match="stale"):
            domain.record_failure(run.state, step="train", attempt=attempt + 1, reason="exit", message="x")
        run.append(domain.record_failure(run.state, step="train", attempt=attempt, reason="exit", message="exit 1"))
        run.advance()
    assert run.jobs[1:] == ["r5-train-1", "r5-train-2", "r5-train-3"]
    assert run.step("train")["state"] == "failed"
    assert states(run)["evaluate"] == "skipped" and states(run)["deploy"] == "skipped"
    # drift does not depend on train: it keeps running, and the run finishes once it is done
    assert run.step("drift")["state"] == "running" and run.state["outcome"] is None  # type: ignore[index]
    run.succeed("drift")
    run.advance()
    assert run.state["outcome"] == "failed" and run.events[-1].data["failed_steps"] == ["train"]  # type: ignore[index]
    assert run.replayed() == run.state


def test_when_false_skips_with_the_reason_and_an_undecidable_when_fails_the_step() -> None:
    pipeline = load_pipeline("""
name: p
params: {fast: true}
steps:
  - {id: a, command: "true"}
  - {id: b, needs: a, when: "not params.fast", command: "true"}
  - {id: c, needs: b, command: "true"}
  - {id: d, needs: a, when: "steps.a.metrics.acc > 0.5", command: "true"}
""")
    run = Run(pipeline, run_id="r6", inputs={})
    run.advance()
    run.succeed("a")
    run.advance()
    assert run.step("b")["state"] == "skipped" and run.step("b")["message"] == "when: not params.fast is false"
    assert run.step("c")["state"] == "running"  # a need skipped by its when: is not a failure
    assert run.step("d")["state"] == "failed" and "has no value" in run.step("d")["message"]
    run.succeed("c")
    run.advance()
    assert run.state["outcome"] == "failed"  # type: ignore[index]


def test_cancel_skips_pending_steps_cancels_running_jobs_and_finishes_cancelled() -> None:
    run = Run(run_id="r7")
    run.advance()
    run.succeed("prepare", {"features": "f" * 64})
    run.advance()
    run.append(domain.request_cancel(run.state, reason="newer push"), actor="ada")
    assert domain.request_cancel(run.state, reason="again") is None
    actions = run.advance()
    # asked again on every call until the job's end is recorded: cancelling a job twice is harmless
    assert {a.job_id for a in actions if a.kind == "cancel_job"} == {"r7-train-1"}
    assert states(run)["evaluate"] == "skipped" and run.step("evaluate")["reason"] == "cancelled"
    assert run.state["outcome"] is None  # type: ignore[index]  # train and drift still running
    run.append(domain.record_failure(run.state, step="train", attempt=1, reason="cancelled", message="cancelled"))
    run.succeed("drift")
    run.advance()
    assert run.state["outcome"] == "cancelled"  # type: ignore[index]
    with pytest.raises(Conflict, match="nothing to cancel"):
        domain.request_cancel(run.state, reason="late")
    assert run.replayed() == run.state


def _full_run(run_id: str, cache: dict[str, CacheEntry] | None = None, **start: Any) -> Run:
    run = Run(run_id=run_id, **start)
    run.play_to_gate("m1" * 32, auc=0.999)
    run.gate(seeds(0.999, 0.999, 0.999), champion=None)
    run.deploy_after_gate()
    return run


def test_an_unchanged_rerun_hits_the_cache_for_every_step() -> None:
    first = _full_run("r8")
    entries = cache_entries(first.state, "r8")  # type: ignore[arg-type]
    again = Run(run_id="r9")
    again.advance(cache=entries)
    assert again.state["outcome"] == "succeeded" and again.jobs == []  # type: ignore[index]
    assert {sid: s["state"] for sid, s in again.state["steps"].items() if sid != "approve"} == dict.fromkeys(
        [s for s in ML.order if s != "approve"], "cached")
    assert again.step("evaluate")["metrics"] == {"auc": 0.999} and again.step("evaluate")["source_run"] == "r8"
    # a third run from the second's entries still points at the run that did the work
    assert cache_entries(again.state, "r9")[again.step("train")["cache_key"]].run_id == "r8"  # type: ignore[arg-type]
    forced = Run(run_id="r10", no_cache=True)
    forced.advance(cache=entries)
    assert forced.step("prepare")["state"] == "running"


def test_a_changed_code_param_or_input_misses_the_cache_downstream() -> None:
    entries = cache_entries(_full_run("r11").state, "r11")  # type: ignore[arg-type]
    other_code = Run(run_id="r12", code_digest="code-2")
    other_code.advance(cache=entries)
    assert other_code.step("prepare")["state"] == "running"
    new_data = Run(run_id="r13", inputs={**INPUTS, "dataset:holdout@v3": "0" * 64})
    new_data.advance(cache=entries)
    new_data.advance(cache=entries)
    assert new_data.step("prepare")["state"] == "cached" and new_data.step("train")["state"] == "cached"
    assert new_data.step("evaluate")["state"] == "running"  # it reads the holdout set


def test_cache_key_changes_with_each_part_and_not_with_map_order() -> None:
    step = ML.step("train")
    base = dict(code_digest="c", params={"a": 1, "b": 2}, input_digests={"x": "1", "y": "2"}, environment_digest="e")
    key = cache_key(step, **base)  # type: ignore[arg-type]
    assert len(key) == 64 and key == cache_key(step, **{**base, "params": {"b": 2, "a": 1}})  # type: ignore[arg-type]
    changed = [dict(base, code_digest="c2"), dict(base, params={"a": 1, "b": 3}),
               dict(base, input_digests={"x": "1", "y": "3"}), dict(base, environment_digest="e2")]
    keys = {cache_key(step, **c) for c in changed} | {cache_key(replace(step, retries=5), **base)}  # type: ignore[arg-type]
    assert key not in keys and len(keys) == 5


def test_gate_thresholds_seeds_and_direction() -> None:
    gate = ML.step("gate").special
    low = decide_gate(gate, {"auc": 0.80}, None, params={"min_auc": 0.85}, steps={})  # type: ignore[arg-type]
    assert not low.passed and "steps.evaluate.metrics.auc >= params.min_auc is not met" in low.message
    few = decide_gate(gate, {"auc": 0.99}, seeds(0.9, 0.9, 0.9), params={"min_auc": 0.85}, steps={})  # type: ignore[arg-type]
    assert not few.passed and "the candidate has 1 seed run(s) of auc; the gate needs 3" in few.message
    small = decide_gate(gate, {"auc": 0.953}, seeds(0.95, 0.95, 0.95), params={"min_auc": 0.85}, steps={},  # type: ignore[arg-type]
                        candidate_metrics_by_seed=seeds(0.953, 0.953, 0.953))
    assert not small.passed and small.comparisons[1]["improvement"] == pytest.approx(0.003)
    missing = decide_gate(gate, {"loss": 1.0}, None, params={"min_auc": 0.85}, steps={},  # type: ignore[arg-type]
                          candidate_metrics_by_seed=seeds(0.9, 0.9, 0.9))
    assert not missing.passed and missing.comparisons[0]["error"] == "steps.evaluate.metrics.auc has no value"
    lower = load_pipeline("""
name: p
steps:
  - {id: ev, command: "true"}
  - {id: g, needs: ev, gate: {step: ev, champion: {model: "model:m@prod", metric: loss, direction: min,
                                                     min_improvement: 0.1}}}
""").step("g").special
    assert decide_gate(lower, {"loss": 0.5}, [{"loss": 0.7}], params={}, steps={}).passed  # type: ignore[arg-type]
    worse = decide_gate(lower, {"loss": 0.5}, [{"loss": 0.55}], params={}, steps={})  # type: ignore[arg-type]
    assert not worse.passed and worse.comparisons[0]["improvement"] == pytest.approx(0.05)
    with pytest.raises(InvalidInput, match="champion's runs must each have a number for metric 'loss'"):
        decide_gate(lower, {"loss": 0.5}, seeds(0.7), params={}, steps={})  # type: ignore[arg-type]


def test_concurrency_policies() -> None:
    assert decide_concurrency("queue", []).start
    queued = decide_concurrency("queue", ["r1", "r2"])
    assert not queued.start and queued.wait_for == ("r1", "r2") and queued.cancel == ()
    newer = decide_concurrency("cancel-older", ["r1"])
    assert newer.start and newer.cancel == ("r1",)
    skipped = decide_concurrency("skip", ["r1"])
    assert not skipped.start and skipped.cancel == () and skipped.wait_for == ()
    with pytest.raises(InvalidInput, match="concurrency must be one of queue, cancel-older, skip"):
        decide_concurrency("latest", [])


def test_bad_commands_raise_domain_errors_and_change_nothing() -> None:
    with pytest.raises(InvalidInput, match="has no param 'lrr'"):
        domain.start_run(None, pipeline=ML, params={"lrr": 1}, trigger={"kind": "manual", "actor": "ada"}, inputs=INPUTS)
    with pytest.raises(InvalidInput, match="manual trigger names the actor"):
        domain.start_run(None, pipeline=ML, params={}, trigger={"kind": "manual"}, inputs=INPUTS)
    with pytest.raises(InvalidInput, match="trigger kind must be one of"):
        domain.start_run(None, pipeline=ML, params={}, trigger={"kind": "cron"}, inputs=INPUTS)
    with pytest.raises(InvalidInput, match="input dataset:holdout@v3 was not resolved"):
        domain.start_run(None, pipeline=ML, params={}, trigger={"kind": "schedule"},
                         inputs={"dataset:transactions": "d" * 64})
    run = Run(run_id="r14", params={"epochs": 20}, trigger={"kind": "manual", "actor": "ada"})
    assert run.state["params"] == {"lr": 0.01, "epochs": 20, "min_auc": 0.85}  # type: ignore[index]
    with pytest.raises(Conflict, match="started already"):
        domain.start_run(run.state, pipeline=ML, params={}, trigger={"kind": "schedule"}, inputs=INPUTS)
    run.advance()
    before = copy.deepcopy(run.state)
    with pytest.raises(InvalidInput, match="declares output 'features' but did not produce it"):
        domain.record_success(run.state, step="prepare", attempt=1, outputs={}, metrics={})
    with pytest.raises(NotFound, match="no step 'nope'"):
        domain.record_success(run.state, step="nope", attempt=1, outputs={}, metrics={})
    with pytest.raises(InvalidInput, match="reason must be one of"):
        domain.record_failure(run.state, step="prepare", attempt=1, reason="boom", message="")
    with pytest.raises(NotFound, match="does not exist"):
        domain.request_cancel(None, reason="x")
    assert run.state == before
    stray = Event(type="step.started", project="acme", aggregate="pipeline_run", aggregate_id="zz",
                  data={"step": "a", "attempt": 1, "kind": "job", "job_id": None, "cache_key": "0" * 64})
    with pytest.raises(EventOutOfOrder, match="no pipeline_run.started"):
        domain.evolve(None, stray)
