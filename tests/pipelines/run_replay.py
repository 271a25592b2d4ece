"""A pipeline run replayed without a platform: events appended (schema-checked) and folded, the
engine's side played by the test. Shared by the engine-domain and code-host tests."""

from __future__ import annotations

import copy
import itertools
from pathlib import Path
from typing import Any

from cairn.kernel.envelope import Event
from cairn.kernel.schemas import validate_event
from cairn.pipelines.spec import Pipeline
from cairn.pipelines.validate import load_pipeline
from cairn.services.pipelines import domain
from cairn.services.pipelines.cache import CacheEntry
from cairn.services.pipelines.gates import decide_gate

ML = load_pipeline(Path(__file__).parent / "examples" / "ml.yaml")
INPUTS = {"dataset:transactions": "d" * 64, "dataset:holdout@v3": "e" * 64}
_clock = itertools.count()


class Run:
    """One run: appends events (schema-checked), folds them, and plays the engine's side."""

    def __init__(self, pipeline: Pipeline = ML, run_id: str = "r1", **start: Any) -> None:
        self.pipeline, self.run_id = pipeline, run_id
        self.events: list[Event] = []
        self.state: dict[str, Any] | None = None
        self.jobs: list[str] = []
        args = {"params": {}, "trigger": {"kind": "push", "commit": "c" * 40}, "inputs": INPUTS,
                "code_digest": "code-1", "environment_digest": "env-1", **start}
        self.append(domain.start_run(None, pipeline=pipeline, **args))

    def append(self, decision: domain.Decision, actor: str = "engine") -> None:
        if decision is None:
            return
        kind, data = decision
        event = Event(type=kind, project="acme", aggregate="pipeline_run", aggregate_id=self.run_id,
                      data=copy.deepcopy(data), actor=actor, time=f"2026-01-01T00:00:{next(_clock) % 60:02d}Z",
                      sequence=len(self.events) + 1)
        validate_event(event)
        self.events.append(event)
        self.state = domain.evolve(self.state, event)

    def advance(self, cache: dict[str, CacheEntry] | None = None) -> list[domain.Action]:
        """Apply next_actions until only waiting is left; return every action taken."""
        taken: list[domain.Action] = []
        while actions := domain.next_actions(self.state, self.pipeline, cache):
            for action in actions:
                if action.kind == "start" and action.job_id:
                    self.jobs.append(action.job_id)
                if action.event is not None:
                    self.append(action.event)
            taken.extend(actions)
            if all(a.event is None for a in actions):
                break
        return taken

    def step(self, sid: str) -> dict[str, Any]:
        assert self.state is not None
        return self.state["steps"][sid]

    def succeed(self, sid: str, outputs: dict[str, Any] | None = None, **metrics: Any) -> None:
        attempt = self.step(sid)["attempt"]
        self.append(domain.record_success(self.state, step=sid, attempt=attempt, outputs=outputs or {}, metrics=metrics))

    def gate(self, candidate: list[dict[str, Any]], champion: list[dict[str, Any]] | None) -> None:
        gate = self.pipeline.step("gate").special
        decision = decide_gate(gate, candidate[0], champion, params=self.state["params"],  # type: ignore[arg-type, index]
                               steps=domain._context(self.state), candidate_metrics_by_seed=candidate)  # type: ignore[arg-type]
        self.append(domain.record_gate(self.state, step="gate", decision=decision))

    def play_to_gate(self, model: str, auc: float) -> None:
        self.advance()
        self.succeed("prepare", {"features": "f" * 64})
        self.advance()
        self.succeed("drift", drift_share=0.1)
        self.succeed("train", {"model": model})
        self.advance()
        self.succeed("evaluate", {"report": "r" * 64}, auc=auc)
        self.advance()

    def deploy_after_gate(self) -> None:
        """After a passed gate (and an approval skipped by its condition): register, promote and
        deploy succeed, and the run finishes."""
        self.advance()
        self.succeed("register", {"version": 1})
        self.advance()
        self.succeed("promote")
        self.advance()
        self.succeed("deploy")
        self.advance()

    def replayed(self) -> dict[str, Any] | None:
        state = None
        for event in self.events:
            state = domain.evolve(state, event)
        return state


def seeds(*aucs: float) -> list[dict[str, Any]]:
    return [{"auc": auc} for auc in aucs]


