"""An unchanged MLflow training script logs to Cairn; what it logged is a normal Cairn run."""

from __future__ import annotations

import httpx
import pytest
from mlflow_scripts import run_script

from platform_harness import Platform, read_all_events

pytestmark = pytest.mark.shared_stack  # see tests/conftest.py

TRAINING_SCRIPT = """
import json, os, tempfile
import mlflow
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

mlflow.set_experiment("iris")
mlflow.sklearn.autolog()
X, y = load_iris(return_X_y=True)
with mlflow.start_run(run_name="iris-logreg") as run:
    mlflow.log_params({"C": 0.5, "solver": "lbfgs"})
    for step in range(5):
        mlflow.log_metrics({"loss": 1.0 / (step + 1), "acc": 0.5 + step / 10}, step=step)
    mlflow.set_tags({"team": "vision", "stage": "dev"})
    folder = tempfile.mkdtemp()
    with open(os.path.join(folder, "notes.txt"), "w") as f:
        f.write("hello")
    os.makedirs(os.path.join(folder, "plots"))
    with open(os.path.join(folder, "plots", "a.txt"), "w") as f:
        f.write("a" * 1000)
    mlflow.log_artifact(os.path.join(folder, "notes.txt"))
    mlflow.log_artifacts(folder, artifact_path="extra")
    LogisticRegression(C=0.5, max_iter=200).fit(X, y)
print(json.dumps({"run_id": run.info.run_id, "experiment_id": run.info.experiment_id}))
"""


@pytest.fixture(scope="module")
def cairn(platform: Platform):
    with httpx.Client(base_url=f"{platform.gateway}/api/v1", headers=platform.headers, timeout=30) as client:
        yield client


@pytest.fixture(scope="module")
def trained(platform: Platform, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Runs the training script once for the module."""
    return run_script(tmp_path_factory.mktemp("train"), TRAINING_SCRIPT, uri=platform.gateway,
                      token=platform.token).result


def test_training_script_makes_a_normal_cairn_run(trained: dict, cairn: httpx.Client) -> None:
    run = cairn.get(f"/registry/projects/default/runs/{trained['run_id']}").json()
    assert run["name"] == "iris-logreg" and run["status"] == "finished"
    assert run["params"]["C"] == "0.5" and run["params"]["solver"] == "lbfgs"
    assert run["params"]["max_iter"] == "200"  # from sklearn autolog
    assert run["tags"]["team"] == "vision" and run["tags"]["stage"] == "dev"
    experiment = cairn.get(f"/registry/projects/default/experiments/{run['experiment_id']}").json()
    assert experiment["name"] == "iris"
    loss = cairn.get(f"/metrics/projects/default/runs/{trained['run_id']}/metrics", params={"key": "loss"}).json()
    assert loss["steps"][-1] == 4 and loss["values"][-1] == pytest.approx(0.2)
    summary = cairn.get(f"/metrics/projects/default/runs/{trained['run_id']}/metrics/summary").json()
    assert "training_accuracy_score" in {s["key"] for s in summary["summaries"]}


def test_artifacts_are_content_addressed_run_artifacts(trained: dict, cairn: httpx.Client) -> None:
    listed = cairn.get(f"/artifacts/projects/default/runs/{trained['run_id']}/artifacts").json()["artifacts"]
    names = {a["name"]: a for a in listed}
    assert {"notes.txt", "extra/notes.txt", "extra/plots/a.txt", "model/MLmodel", "model/model.pkl"} <= set(names)
    assert names["notes.txt"]["digest"] == names["extra/notes.txt"]["digest"]  # same bytes, one blob
    blob = cairn.get(f"/artifacts/blobs/{names['extra/plots/a.txt']['digest']}")
    assert blob.content == b"a" * 1000


def test_run_events_are_in_the_log(trained: dict, platform: Platform) -> None:
    events = [e for e in read_all_events(platform.nats_url) if e["aggregate_id"] == trained["run_id"]]
    types = {e["type"] for e in events}
    assert {"run.created", "run.params_logged", "run.tag_set", "run.finished", "run.artifact_logged"} <= types
    assert all(e["actor"].startswith("admin:") for e in events)


def test_mlflow_reads_back_what_it_logged(trained: dict, run_mlflow) -> None:
    out = run_mlflow(f"""
        import json, mlflow
        from mlflow import MlflowClient
        client = MlflowClient()
        run = client.get_run({trained['run_id']!r})
        history = client.get_metric_history(run.info.run_id, "loss")
        files = sorted(f.path for f in client.list_artifacts(run.info.run_id, "extra"))
        path = mlflow.artifacts.download_artifacts(run_id=run.info.run_id, artifact_path="extra/plots/a.txt")
        print(json.dumps({{"status": run.info.status, "params": run.data.params, "tags": run.data.tags,
                          "loss": [(m.step, m.value) for m in history], "files": files,
                          "a": open(path).read(), "datasets": len(run.inputs.dataset_inputs),
                          "metrics": run.data.metrics,
                          "times": {{m.key: m.timestamp for m in run.data._metric_objs}},
                          "loss_last_time": max(history, key=lambda m: m.step).timestamp}}))
    """).result
    assert out["status"] == "FINISHED"
    assert out["params"]["C"] == "0.5" and out["tags"]["team"] == "vision"
    assert out["tags"]["mlflow.runName"] == "iris-logreg"
    assert [step for step, _ in out["loss"]][-1] == 4 and out["loss"][-1][1] == pytest.approx(0.2)
    assert out["files"] == ["extra/notes.txt", "extra/plots"]
    assert out["a"] == "a" * 1000
    assert out["datasets"] >= 1  # autolog's training dataset (log-inputs)
    assert out["metrics"]["loss"] == pytest.approx(0.2)
    assert out["times"]["loss"] == out["loss_last_time"] > 0  # the last point's time, as MLflow sends it


def test_search_runs_matches_cairn_search(run_mlflow, cairn: httpx.Client) -> None:
    out = run_mlflow("""
        import json, time, mlflow
        experiment = mlflow.set_experiment("sweep")
        for i in range(6):
            with mlflow.start_run(run_name=f"trial-{i}"):
                mlflow.log_param("lr", str(0.1 * (i + 1))[:4])
                mlflow.log_param("opt", "adam" if i % 2 else "sgd")
                mlflow.set_tag("group", "a" if i < 3 else "b")
                mlflow.log_metric("val_loss", 1.0 - i * 0.1, step=0)
        # metric filters see points once the metrics service has written them (well under a second)
        deadline = time.time() + 30
        while len(mlflow.search_runs([experiment.experiment_id], "metrics.val_loss > -1")) < 6:
            assert time.time() < deadline
            time.sleep(0.1)
        found = mlflow.search_runs(experiment_ids=[experiment.experiment_id],
                                   filter_string="metrics.val_loss < 0.85 and params.opt = 'adam' and tags.group != 'x'",
                                   order_by=["metrics.val_loss DESC"])
        page = mlflow.MlflowClient().search_runs([experiment.experiment_id], max_results=4,
                                                 order_by=["attributes.run_name ASC"])
        rest = mlflow.MlflowClient().search_runs([experiment.experiment_id], max_results=4,
                                                 order_by=["attributes.run_name ASC"], page_token=page.token)
        print(json.dumps({"experiment_id": experiment.experiment_id, "ids": list(found["run_id"]),
                          "names": [r.info.run_name for r in page] + [r.info.run_name for r in rest]}))
    """).result
    cairn_found = cairn.post("/registry/projects/default/runs/search", json={
        "experiment_ids": [out["experiment_id"]],
        "filter": "metrics.val_loss < 0.85 and params.opt = 'adam' and tags.group != 'x'",
        "order_by": ["metrics.val_loss DESC"]}).json()["runs"]
    assert out["ids"] == [r["id"] for r in cairn_found]
    assert len(out["ids"]) == 2  # trials 3 and 5
    assert out["names"] == [f"trial-{i}" for i in range(6)]


def test_cairn_sdk_run_is_readable_through_mlflow(platform: Platform, run_mlflow) -> None:
    import cairn as cairn_sdk
    with cairn_sdk.Client(platform.gateway, token=platform.token) as client:
        with cairn_sdk.start_run(project="default", experiment="sdk-made", params={"depth": 3},
                                 tags={"origin": "sdk"}, client=client, system_metrics=False) as run:
            for step in range(10):
                run.log_metric("score", step / 10, step=step)
            run_id = run.id
    out = run_mlflow(f"""
        import json
        from mlflow import MlflowClient
        client = MlflowClient()
        run = client.get_run({run_id!r})
        history = client.get_metric_history({run_id!r}, "score")
        experiment = client.get_experiment(run.info.experiment_id)
        print(json.dumps({{"params": run.data.params, "tags": run.data.tags, "status": run.info.status,
                          "steps": [m.step for m in history], "experiment": experiment.name}}))
    """).result
    assert out["params"] == {"depth": "3"} and out["tags"]["origin"] == "sdk"
    assert out["status"] == "FINISHED" and out["experiment"] == "sdk-made"
    assert out["steps"] == list(range(10))


def test_project_scoped_tracking_uri(platform: Platform, run_mlflow, cairn: httpx.Client) -> None:
    assert cairn.post("/registry/projects", json={"name": "vision"}).status_code == 201
    out = run_mlflow("""
        import json, mlflow
        mlflow.set_experiment("detector")
        with mlflow.start_run() as run:
            mlflow.log_metric("map", 0.5)
            mlflow.log_text("scoped", "hello.txt")
        print(json.dumps({"run_id": run.info.run_id, "uri": run.info.artifact_uri}))
    """, uri=f"{platform.gateway}/mlflow/vision").result
    run = cairn.get(f"/registry/projects/vision/runs/{out['run_id']}").json()
    assert run["status"] == "finished"
    names = [a["name"] for a in cairn.get(f"/artifacts/projects/vision/runs/{out['run_id']}/artifacts").json()["artifacts"]]
    assert names == ["hello.txt"]
    assert cairn.get(f"/registry/projects/default/runs/{out['run_id']}").status_code == 404


def test_a_notebook_run_has_mlflows_notebook_source_tags(platform: Platform, run_mlflow, tmp_path) -> None:
    """A run whose code record is a notebook (what start_run records in Jupyter: the archive made
    and uploaded by cairn.sdk.notebook) reads through MLflow as source NOTEBOOK named after it;
    a run without that record gets no source tags of ours."""
    import cairn as cairn_sdk
    from cairn.protocol import NOTEBOOK_CODE_KIND
    from cairn.sdk.code_snapshot import upload_snapshot
    from cairn.sdk.notebook import strip_notebook, write_notebook

    notebook = {"cells": [{"cell_type": "code", "execution_count": 1, "metadata": {}, "outputs": [], "source": "lr = 0.5"}],
                "metadata": {}, "nbformat": 4, "nbformat_minor": 5}

    with cairn_sdk.Client(platform.gateway, token=platform.token) as client:
        ids = {}
        for name in ("from-notebook", "from-script"):
            with cairn_sdk.start_run(project="default", experiment="sdk-made", name=name, client=client,
                                     record_environment=False, system_metrics=False) as run:
                ids[name] = run.id
        snap = write_notebook(strip_notebook(notebook, outputs=False), "train.ipynb", tmp_path)
        snap.kind = NOTEBOOK_CODE_KIND
        snap.notebook = {"found_by": "jupyter_server", "name": "train.ipynb", "cells": 1, "outputs_kept": False}
        client.record_run_environment("default", ids["from-notebook"], code=upload_snapshot(client, "default", snap))
    out = run_mlflow(f"""
        import json
        from mlflow import MlflowClient
        client = MlflowClient()
        print(json.dumps({{name: client.get_run(run_id).data.tags for name, run_id in {ids!r}.items()}}))
    """).result
    assert out["from-notebook"]["mlflow.source.type"] == "NOTEBOOK"
    assert out["from-notebook"]["mlflow.source.name"] == "train.ipynb"
    assert "mlflow.source.type" not in out["from-script"] and "mlflow.source.name" not in out["from-script"]
