"""The pipelines read model without a platform: hand-built, schema-checked events applied through
the service's projection into a temporary store, then read back through the store's methods (the
facts of other services, the run view, the list, the step cache) and rebuilt by replay."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest
from run_replay import ML, Run

from cairn.kernel.envelope import Event
from cairn.kernel.errors import NotFound
from cairn.kernel.schemas import validate_event
from cairn.services.pipelines import domain
from cairn.services.pipelines.projection import projection
from cairn.services.pipelines.store import PipelinesStore

D1, D2, M1, M2, A1, A2 = ("1" * 64, "2" * 64, "3" * 64, "4" * 64, "5" * 64, "6" * 64)


class Log:
    """Events in sequence order, schema-checked, applied one batch at a time."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self._seq = itertools.count(1)

    def add(self, type_: str, aggregate: str, aggregate_id: str, data: dict[str, Any], *, version: int = 1,
            project: str = "acme", time: str = "2026-03-01T00:00:00Z") -> Event:
        event = Event(type=type_, project=project, aggregate=aggregate, aggregate_id=aggregate_id, data=data,
                      version=version, time=time, sequence=next(self._seq))
        validate_event(event)
        self.events.append(event)
        return event

    def apply(self, store: PipelinesStore) -> None:
        store.apply(self.events, projection())


def _job(log: Log, job_id: str, key: str | None, run_id: str) -> None:
    env = {"CAIRN_PIPELINE_JOB": key} if key else {}
    log.add("job.submitted", "job", job_id, {"job_id": job_id, "run_id": run_id, "project": "acme", "spec": {
        "command": ["python", "train.py"], "code": None, "requirements": [], "datasets": [], "params": {},
        "resources": {"cpus": 1, "memory_mib": 512, "gpus": 0, "gpu_type": None}, "seed": None, "queue": "default",
        "priority": 0, "timeout": None, "max_retries": 0, "nodes": 1, "experiment": "fraud-ml", "env": env}})


def _summary(run_id: str, key: str, count: int, last: float) -> dict[str, Any]:
    return {"run_id": run_id, "key": key, "count": count, "min": last, "max": last, "last": last,
            "last_step": count, "last_time": None}


@pytest.fixture()
def facts(tmp_path: Path) -> tuple[PipelinesStore, Log]:
    log = Log()
    _job(log, "j1", "r1-train-1", "run-a")
    _job(log, "other", None, "run-x")  # not a pipeline's job: not kept
    log.add("job.started", "job", "j1", {"attempt": 1, "agent_id": "ag", "rank": 0, "started_at": 1.0})
    log.add("job.failed", "job", "j1", {"attempt": 1, "exit_code": 2, "reason": "exit", "message": "boom"})
    run_tags = {"cairn.pipeline_run": "r1", "cairn.pipeline_step": "train"}
    log.add("run.created", "run", "run-a", {"experiment_id": "e", "name": "a", "params": {}, "tags": run_tags,
                                            "description": "", "status": "running"}, version=2)
    log.add("run.created", "run", "run-b", {"experiment_id": "e", "name": "b", "params": {}, "tags": {},
                                            "description": "", "status": "running"})
    log.add("run.tag_set", "run", "run-b", {"key": "cairn.pipeline_run", "value": "r1"})
    log.add("run.tag_set", "run", "run-b", {"key": "cairn.pipeline_step", "value": "train"})
    log.add("run.tag_set", "run", "run-c", {"key": "cairn.pipeline_run", "value": "r1"})  # another step's
    artifact = {"kind": "file", "size": 1, "files": 1}
    log.add("run.artifact_logged", "artifact_set", "run-a", {"name": "model", "digest": A1, **artifact})
    log.add("run.artifact_logged", "artifact_set", "run-a", {"name": "model", "digest": A2, **artifact}, version=2)
    log.add("metric.summarized", "metrics", "acme", {"summaries": [_summary("run-a", "auc", 5, 0.91)]})
    log.add("metric.summarized", "metrics", "acme", {"summaries": [_summary("run-a", "auc", 3, 0.5)]})  # older
    log.add("model.created", "model", "m-1", {"model_id": "m-1", "name": "fraud", "description": ""})
    for version, digest, run in ((1, M1, "run-a"), (2, M2, "run-b")):
        log.add("model_version.created", "model", "m-1", {"version": version, "run_id": run,
                                                          "artifact_digest": digest, "description": ""})
    log.add("model_version.alias_set", "model", "m-1", {"alias": "production", "version": 1, "previous_version": None})
    log.add("model_version.alias_set", "model", "m-1", {"alias": "staging", "version": 2, "previous_version": None})
    log.add("model_version.alias_removed", "model", "m-1", {"alias": "staging", "version": 2})
    for version, digest in ((1, D1), (2, D2)):
        log.add("dataset.version_created", "dataset", "transactions", {
            "version": version, "manifest_digest": digest, "files": 1, "total_size": 1, "description": ""})
    store = PipelinesStore(Path(tmp_path) / "p.sqlite3")
    return store, log


def test_facts_of_jobs_runs_models_and_datasets(facts: tuple[PipelinesStore, Log]) -> None:
    store, log = facts
    log.apply(store)
    assert store.job_for_key("r1-train-1") == {"job_id": "j1", "run_id": "run-a", "status": "failed",
                                               "attempt": 1, "reason": "exit", "message": "boom"}
    assert store.job_for_key("nothing") is None
    assert store.query_one("SELECT count(*) FROM fact_jobs")[0] == 1
    assert store.run_artifacts("run-a") == {"model": A2}  # the newest digest under a name
    assert store.run_metrics("run-a") == {"auc": 0.91}  # the larger count wins
    assert store.run_tags("run-b") == {"cairn.pipeline_run": "r1", "cairn.pipeline_step": "train"}
    assert store.seed_runs("acme", "r1", "train") == ["run-a", "run-b"]
    assert store.dataset_digest("acme", "transactions", None) == (2, D2)
    assert store.dataset_digest("acme", "transactions", 1) == (1, D1)
    assert store.model_digest("acme", "fraud") == (2, M2)
    assert store.model_digest("acme", "fraud", alias="production") == (1, M1)
    assert store.model_digest("acme", "fraud", version=2) == (2, M2)
    assert store.alias_version("acme", "fraud", "staging") is None
    assert store.model_version_run("acme", "fraud", 2) == "run-b"
    with pytest.raises(NotFound, match="transactions@v9"):
        store.dataset_digest("acme", "transactions", 9)
    with pytest.raises(NotFound, match="'holdout'"):
        store.dataset_digest("acme", "holdout", None)
    with pytest.raises(NotFound, match="no alias 'staging'"):
        store.model_digest("acme", "fraud", alias="staging")
    with pytest.raises(NotFound, match="model 'churn' does not exist"):
        store.model_digest("acme", "churn")
    with pytest.raises(NotFound, match="fraud"):
        store.model_digest("other", "fraud")  # another project's model is not this one's


def test_job_retried_and_succeeded_move_the_job(facts: tuple[PipelinesStore, Log]) -> None:
    store, log = facts
    log.add("job.retried", "job", "j1", {"attempt": 2, "previous_attempt": 1, "exit_code": 2, "reason": "exit",
                                         "message": "again"})
    log.add("job.succeeded", "job", "j1", {"attempt": 2, "exit_code": 0})
    log.apply(store)
    job = store.job_for_key("r1-train-1")
    assert job is not None and (job["status"], job["attempt"]) == ("succeeded", 2)


def test_alerts_fired_since_a_time(facts: tuple[PipelinesStore, Log]) -> None:
    store, log = facts
    alert = {"rule_id": "rule-1", "deployment": "fraud", "name": "errors", "metric": "error_rate", "column": None,
             "comparison": ">", "threshold": 0.1, "value": 0.5, "window": {"size": "1m", "start": 0, "end": 60},
             "persistence": {"k": 1, "n": 1, "breaches": 1}, "history": [], "action": None}
    log.add("alert.fired", "alert", "rule-1", alert, time="2026-03-01T00:00:00Z")
    log.add("alert.fired", "alert", "rule-1", alert, time="2026-03-01T00:10:00Z")
    log.add("alert.fired", "alert", "rule-2", {**alert, "deployment": "churn"}, time="2026-03-01T00:10:00Z")
    log.apply(store)
    since = 1772323200000 + 5 * 60_000  # 2026-03-01T00:05:00Z
    fired = store.alerts_fired("acme", "fraud", since)
    assert [(a["time"], a["rule_id"]) for a in fired] == [("2026-03-01T00:10:00Z", "rule-1")]
    assert len(store.alerts_fired("acme", "fraud", 0)) == 2


def _run_events(log: Log, run: Run) -> None:
    for e in run.events:
        log.add(e.type, "pipeline_run", run.run_id, e.data, time=e.time)


def test_run_view_list_cache_and_rebuild(tmp_path: Path) -> None:
    log = Log()
    first = Run(run_id="r1")
    first.play_to_gate(model="a" * 64, auc=0.95)
    _run_events(log, first)
    _job(log, "job-9", domain.job_id_for("r1", "train", 1), "run-t")  # the scheduler's job for train
    second = Run(run_id="r2")
    second.append(domain.request_cancel(second.state, reason="not now"))
    second.advance()
    _run_events(log, second)
    store = PipelinesStore(tmp_path / "p.sqlite3")
    log.apply(store)

    view = store.run_view("acme", "r1")
    assert view["status"] == "running" and view["pipeline"] == "fraud-ml"
    assert [s["id"] for s in view["steps"]] == list(ML.order)
    assert {s["id"]: s["state"] for s in view["steps"]}["train"] == "succeeded"
    assert view["trigger"] == {"kind": "push", "commit": "c" * 40}
    assert {s["id"]: s["run_id"] for s in view["steps"]}["train"] == "run-t"
    assert store.step_run_id("acme", "r1", "train") == "run-t"
    assert store.step_run_id("acme", "r1", "gate") is None
    assert store.run_view("acme", "r2")["status"] == "cancelled"
    assert [r["id"] for r in store.runs("acme")] == ["r2", "r1"]
    assert [r["id"] for r in store.runs("acme", status="running")] == ["r1"]
    assert store.in_progress("acme", "fraud-ml") == ["r1"]
    assert store.active_runs() == [("acme", "r1")]
    assert store.runs("acme")[1]["commit"] == "c" * 40
    cache = store.cache("acme", "fraud-ml")
    done = {s["cache_key"]: s["id"] for s in view["steps"] if s["state"] == "succeeded"}
    assert {k: e.step for k, e in cache.items()} == done
    assert cache[next(k for k, sid in done.items() if sid == "train")].outputs == {"model": "a" * 64}
    events = store.run_events("acme", "r2")
    assert [e["type"] for e in events] == [e.type for e in second.events]
    assert events[1]["data"] == {"reason": "not now"}
    with pytest.raises(NotFound, match="'r9'"):
        store.run_view("acme", "r9")
    with pytest.raises(NotFound, match="'r9'"):
        store.run_events("acme", "r9")

    before = store.content_hash()
    store.reset()
    log.apply(store)
    assert store.content_hash() == before
    assert store.run_view("acme", "r1") == view
