"""Pipelines read model: ``pipeline_run`` snapshots (the kernel's ``aggregates`` table, folded by
``domain.evolve``), the ``pipeline_runs`` view the lists read, the ``step_cache`` that later runs
of a pipeline reuse, and the facts of other services (facts.py) the engine decides from."""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from cairn.kernel.envelope import subject_for
from cairn.kernel.errors import NotFound
from cairn.kernel.store import SqliteStore, load_state
from cairn.pipelines.spec import Pipeline
from cairn.pipelines.validate import load_pipeline
from cairn.services.pipelines.cache import CacheEntry
from cairn.services.pipelines.definitions import DEFINITIONS_SCHEMA, DefinitionsReader  # part C
from cairn.services.pipelines.facts import FACTS_SCHEMA, FactsReader

SCHEMA = """
CREATE TABLE IF NOT EXISTS pipeline_runs (
    project TEXT NOT NULL, run_id TEXT NOT NULL, pipeline TEXT NOT NULL, status TEXT NOT NULL,
    trigger_kind TEXT NOT NULL, commit_sha TEXT, started_at TEXT NOT NULL, finished_at TEXT,
    seq INTEGER NOT NULL, PRIMARY KEY (project, run_id));
CREATE INDEX IF NOT EXISTS pipeline_runs_by_pipeline ON pipeline_runs(project, pipeline, seq);
CREATE TABLE IF NOT EXISTS step_cache (
    project TEXT NOT NULL, pipeline TEXT NOT NULL, cache_key TEXT NOT NULL, outputs TEXT NOT NULL,
    metrics TEXT NOT NULL, run_id TEXT NOT NULL, step TEXT NOT NULL, seq INTEGER NOT NULL,
    PRIMARY KEY (project, pipeline, cache_key));
CREATE TABLE IF NOT EXISTS pipeline_run_events (
    project TEXT NOT NULL, run_id TEXT NOT NULL, seq INTEGER NOT NULL, type TEXT NOT NULL, time TEXT NOT NULL,
    actor TEXT NOT NULL, data TEXT NOT NULL, PRIMARY KEY (project, run_id, seq));
"""
RUN_STATUSES = ("running", "succeeded", "failed", "cancelled")
_SUMMARY = "run_id, pipeline, status, trigger_kind, commit_sha, started_at, finished_at, seq"


def _source_step(step: dict[str, Any]) -> dict[str, Any]:
    """A canonical step (``Step.to_dict``) back in the file's shape."""
    out: dict[str, Any] = {"id": step["id"], "needs": step["needs"], "inputs": step["inputs"],
                           "outputs": step["outputs"]}
    if step["when"] is not None:
        out["when"] = step["when"]
    kind = step["kind"]
    if kind == "job":
        resources = dict(step["resources"])
        resources["memory"] = resources.pop("memory_mib")
        if resources["gpu_type"] is None:
            del resources["gpu_type"]
        out.update(command=step["command"], params=step["params"], resources=resources, queue=step["queue"],
                   retries=step["retries"], env=step["env"])
        if step["timeout_s"] is not None:
            out["timeout_s"] = step["timeout_s"]
        return out
    special = {k: v for k, v in step[kind].items() if v is not None}
    if kind == "gate" and "champion" in special:
        champion = dict(special["champion"])
        champion["model"] = f"model:{champion['model']}@{champion.pop('alias')}"
        special["champion"] = champion
    if kind in ("promote", "deploy") and "source" in special:
        special["from"] = special.pop("source")
    out[kind] = special
    return out


@lru_cache(maxsize=256)
def _pipeline_from_json(definition: str) -> Pipeline:
    canonical = json.loads(definition)
    source = {"name": canonical["name"], "concurrency": canonical["concurrency"], "params": canonical["params"],
              "steps": [_source_step(step) for step in canonical["steps"]]}
    if "on" in canonical:  # part C: on: is in the canonical form (and the digest) when declared
        source["on"] = canonical["on"]
    return load_pipeline(yaml.safe_dump(source, sort_keys=False))


def pipeline_of(state: dict[str, Any]) -> Pipeline:
    """The typed pipeline a run was started with: its canonical definition (``to_dict``) written
    back in the file's shape and loaded again, so its digest is the run's; cached by definition."""
    return _pipeline_from_json(json.dumps(state["definition"], sort_keys=True))


class PipelinesStore(DefinitionsReader, FactsReader, SqliteStore):  # DefinitionsReader: part C
    def __init__(self, path: str | Path, extra_schema: str = "") -> None:
        super().__init__(path, SCHEMA + FACTS_SCHEMA + DEFINITIONS_SCHEMA + extra_schema)

    # --- runs ------------------------------------------------------------------------------------

    def run_state(self, project: str, run_id: str) -> tuple[int, dict[str, Any] | None]:
        return load_state(self.reader(), subject_for(project, "pipeline_run", run_id))

    def run_view(self, project: str, run_id: str) -> dict[str, Any]:
        seq, state = self.run_state(project, run_id)
        if state is None:
            raise NotFound(f"pipeline run {run_id!r} does not exist in project {project!r}",
                           details={"field": "run"})
        view = view_of(project, seq, state)
        for step in view["steps"]:
            job = self.job_for_key(step["job_id"]) if step["job_id"] else None
            step["run_id"] = job["run_id"] if job else None
        return view

    def run_events(self, project: str, run_id: str) -> list[dict[str, Any]]:
        """The run's events in log order (NotFound for an unknown run)."""
        rows = self.query("SELECT seq, type, time, actor, data FROM pipeline_run_events WHERE project=? AND "
                          "run_id=? ORDER BY seq", (project, run_id))
        if not rows:
            raise NotFound(f"pipeline run {run_id!r} does not exist in project {project!r}",
                           details={"field": "run"})
        return [{"sequence": r[0], "type": r[1], "time": r[2], "actor": r[3], "data": json.loads(r[4])}
                for r in rows]

    def runs(self, project: str, *, pipeline: str | None = None, status: str | None = None,
             limit: int = 100) -> list[dict[str, Any]]:
        """Summary rows, newest first."""
        sql, args = f"SELECT {_SUMMARY} FROM pipeline_runs WHERE project=?", [project]
        if pipeline is not None:
            sql, args = sql + " AND pipeline=?", [*args, pipeline]
        if status is not None:
            sql, args = sql + " AND status=?", [*args, status]
        rows = self.query(sql + " ORDER BY seq DESC LIMIT ?", [*args, limit])
        return [{"id": r[0], "project": project, "pipeline": r[1], "status": r[2], "trigger_kind": r[3],
                 "commit": r[4], "started_at": r[5], "finished_at": r[6], "seq": r[7]} for r in rows]

    def active_runs(self) -> list[tuple[str, str]]:
        """(project, run id) of every run not finished, oldest first."""
        return [(r[0], r[1]) for r in self.query(
            "SELECT project, run_id FROM pipeline_runs WHERE status='running' ORDER BY seq")]

    def in_progress(self, project: str, pipeline: str) -> list[str]:
        return [r[0] for r in self.query(
            "SELECT run_id FROM pipeline_runs WHERE project=? AND pipeline=? AND status='running' ORDER BY seq",
            (project, pipeline))]

    def cache(self, project: str, pipeline: str) -> dict[str, CacheEntry]:
        """What earlier runs of ``pipeline`` offer to a new one (one entry per key: the newest)."""
        return {r[0]: CacheEntry(json.loads(r[1]), json.loads(r[2]), r[3], r[4]) for r in self.query(
            "SELECT cache_key, outputs, metrics, run_id, step FROM step_cache WHERE project=? AND pipeline=?",
            (project, pipeline))}

    def step_run_id(self, project: str, run_id: str, step: str) -> str | None:
        """The registry run of a job step's current attempt (job key -> scheduler job -> run)."""
        _, state = self.run_state(project, run_id)
        if state is None or step not in state["steps"]:
            return None
        key = state["steps"][step]["job_id"]
        job = self.job_for_key(key) if key else None
        return job["run_id"] if job else None


def view_of(project: str, seq: int, state: dict[str, Any]) -> dict[str, Any]:
    """The API's run view: the state with its steps in the pipeline's order."""
    order = pipeline_of(state).order
    steps = []
    for sid in order:
        s = state["steps"][sid]
        steps.append({"id": sid, "kind": s["kind"], "state": s["state"], "attempt": s["attempt"],
                      "job_id": s["job_id"], "run_id": None, "cache_key": s["cache_key"], "outputs": s["outputs"],
                      "metrics": s["metrics"], "reason": s["reason"], "message": s["message"],
                      "comparisons": s["comparisons"], "started_at": s["started_at"],
                      "finished_at": s["finished_at"], "required_role": s["required_role"],
                      "decided_by": s["decided_by"], "source_run": s["source_run"]})
    status = "running" if state["outcome"] is None else state["outcome"]
    return {"id": state["run_id"], "project": project, "pipeline": state["name"], "digest": state["digest"],
            "status": status, "trigger": state["trigger"], "params": state["params"],
            "code": state.get("code"), "code_digest": state["code_digest"], "inputs": state["inputs"],
            "no_cache": state["no_cache"], "cancel_requested": state["cancel_requested"],
            "started_at": state["started_at"], "finished_at": state["finished_at"], "steps": steps,
            "outcome": state["outcome"], "seq": seq}
