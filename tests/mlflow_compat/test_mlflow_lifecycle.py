"""Experiment and run lifecycle through the MLflow client: rename, tags, delete (archive) and
restore, deleted-run search, tag deletion, dataset inputs and the bulk metric history."""

from __future__ import annotations

import httpx
import pytest

from platform_harness import Platform

pytestmark = pytest.mark.shared_stack  # see tests/conftest.py

LIFECYCLE = """
import json
import mlflow
from mlflow import MlflowClient
from mlflow.entities import ViewType

client = MlflowClient()
experiment_id = client.create_experiment("life", tags={"owner": "ml"})
client.rename_experiment(experiment_id, "life-renamed")
client.set_experiment_tag(experiment_id, "phase", "beta")
found = client.search_experiments(filter_string="name LIKE 'life-%' and tags.phase = 'beta'")
run = client.create_run(experiment_id, tags={"temp": "1"}, run_name="first")
client.delete_tag(run.info.run_id, "temp")
for step in range(20):
    client.log_metric(run.info.run_id, "loss", 1 / (step + 1), step=step)
client.set_terminated(run.info.run_id, "FAILED")
client.delete_run(run.info.run_id)
deleted = client.search_runs([experiment_id], run_view_type=ViewType.DELETED_ONLY)
active = client.search_runs([experiment_id], run_view_type=ViewType.ACTIVE_ONLY)
client.restore_run(run.info.run_id)
restored = client.get_run(run.info.run_id)
client.delete_experiment(experiment_id)
gone = client.get_experiment(experiment_id).lifecycle_stage
client.restore_experiment(experiment_id)
print(json.dumps({
    "experiment_id": experiment_id, "run_id": run.info.run_id,
    "found": [e.name for e in found], "tags": client.get_experiment(experiment_id).tags,
    "deleted": [r.info.run_id for r in deleted], "active": [r.info.run_id for r in active],
    "restored_stage": restored.info.lifecycle_stage, "status": restored.info.status,
    "run_tags": restored.data.tags, "gone": gone,
    "back": client.get_experiment(experiment_id).lifecycle_stage}))
"""


def test_experiment_and_run_lifecycle(platform: Platform, run_mlflow) -> None:
    out = run_mlflow(LIFECYCLE).result
    assert out["found"] == ["life-renamed"]
    assert out["tags"] == {"owner": "ml", "phase": "beta"}
    assert out["deleted"] == [out["run_id"]] and out["active"] == []
    assert out["restored_stage"] == "active" and out["status"] == "FAILED"
    assert "temp" not in out["run_tags"]
    assert out["gone"] == "deleted" and out["back"] == "active"
    with httpx.Client(base_url=platform.gateway, headers=platform.headers) as http:
        run = http.get(f"/api/v1/registry/projects/default/runs/{out['run_id']}").json()
        assert run["status"] == "failed" and run["archived"] is False
        bulk = http.get("/api/2.0/mlflow/metrics/get-history-bulk-interval",
                        params={"run_ids": out["run_id"], "metric_key": "loss", "max_results": 5}).json()
        assert [m["step"] for m in bulk["metrics"]] == [0, 4, 8, 12, 16, 19]  # MLflow's sampling
        assert all(m["run_id"] == out["run_id"] for m in bulk["metrics"])


def test_dataset_inputs_are_kept_with_the_run(run_mlflow) -> None:
    out = run_mlflow("""
        import json
        import mlflow
        import numpy as np
        dataset = mlflow.data.from_numpy(np.arange(12.0).reshape(4, 3), name="tiny")
        with mlflow.start_run() as run:
            mlflow.log_input(dataset, context="training")
        inputs = mlflow.get_run(run.info.run_id).inputs.dataset_inputs
        print(json.dumps({"names": [i.dataset.name for i in inputs], "digest": dataset.digest,
                          "digests": [i.dataset.digest for i in inputs],
                          "context": [t.value for i in inputs for t in i.tags]}))
    """).result
    assert out["names"] == ["tiny"] and out["digests"] == [out["digest"]]
    assert out["context"] == ["training"]
