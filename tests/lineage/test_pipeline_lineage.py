"""Pipeline runs in the lineage graph: commit -> pipeline run -> its steps' jobs and runs -> the
model version registered from a step's run -> the alias it was promoted to -> the deployment."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cairn.kernel.envelope import Event
from cairn.services.lineage.projection import projection
from cairn.services.lineage.queries import LineageQueries
from cairn.services.lineage.store import LineageStore

SHA, DIGEST, ARCHIVE = "a" * 40, "d" * 64, "c" * 64


def _job(job_id: str, run_id: str, step: str | None) -> dict[str, Any]:
    env = {"CAIRN_PIPELINE_RUN": "pr1", "CAIRN_PIPELINE_STEP": step} if step else {}
    return {"job_id": job_id, "run_id": run_id, "project": "p", "spec": {"command": ["true"], "env": env}}


def _graph(tmp_path: Path) -> LineageQueries:
    made = [
        ("pipeline_run.started", "pipeline_run", "pr1", {
            "pipeline": "fraud", "trigger": {"kind": "push", "commit": SHA, "repo": {"full_name": "acme/fraud"}},
            "code": {"archive_digest": ARCHIVE, "commit": SHA}}),
        ("job.submitted", "job", "j-train", _job("j-train", "r-train", "train")),
        ("job.submitted", "job", "j-other", _job("j-other", "r-other", None)),  # not a pipeline's
        ("model.created", "model", "m1", {"model_id": "m1", "name": "fraud"}),
        ("model_version.created", "model", "m1", {"version": 1, "run_id": "r-train", "artifact_digest": DIGEST}),
        ("model_version.alias_set", "model", "m1", {"alias": "production", "version": 1}),
        ("deployment.created", "deployment", "fraud", {"environment": "prod", "model_id": "m1", "version": 1}),
        ("pipeline_run.finished", "pipeline_run", "pr1", {"outcome": "succeeded", "failed_steps": [], "message": "ok"}),
    ]
    evs = [Event(t, "p", agg, agg_id, data, sequence=i + 1, time=f"2026-01-01T00:00:{i:02d}.000000Z")
           for i, (t, agg, agg_id, data) in enumerate(made)]
    store = LineageStore(tmp_path / "l.duckdb")
    store.apply(evs, projection())
    return LineageQueries(store)


def test_a_pipeline_run_links_its_commit_to_what_its_steps_made(tmp_path: Path) -> None:
    q = _graph(tmp_path)
    commit = q.resolve(f"commit:{SHA}", "p", None)[0]
    below = q.walk(commit, "downstream", depth=None, projects=None, as_of=None)
    refs = {i["ref"] for i in below}
    assert {"pipeline_run:pr1", "job:j-train", "run:r-train", "model:fraud@v1", "model:fraud@production",
            "deployment:fraud"} <= refs
    assert "run:r-other" not in refs and "job:j-other" not in refs  # a job of no pipeline stays apart


def test_upstream_of_a_deployment_reaches_the_pipeline_run_and_its_commit(tmp_path: Path) -> None:
    q = _graph(tmp_path)
    deployment = q.resolve("deployment:fraud", "p", None)[0]
    above = {i["ref"]: i for i in q.walk(deployment, "upstream", depth=None, projects=None, as_of=None)}
    assert "pipeline_run:pr1" in above and f"commit:{SHA}" in above
    assert above["pipeline_run:pr1"]["kind"] == "pipeline_run"
