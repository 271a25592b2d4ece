"""MLflow 3's logged models through the real MLflow client: a record of their own (with or without
a run), params, tags, status, metrics a run logs for them, search with MLflow's filter syntax,
datasets, order_by and pages, links to runs (inputs and outputs), and their files."""

from __future__ import annotations

import httpx
import pytest

from platform_harness import Platform

pytestmark = pytest.mark.shared_stack  # see tests/conftest.py

LIFECYCLE = """
import json, time
from mlflow import MlflowClient
from mlflow.entities import LoggedModelStatus
from mlflow.exceptions import MlflowException

client = MlflowClient()
exp = client.create_experiment("logged-models-lifecycle")
plain = client.create_logged_model(exp)
full = client.create_logged_model(exp, name="my_model", model_type="LLM", source_run_id="123",
                                  params={"param": "value"}, tags={"tag": "value"})
loaded = client.get_logged_model(full.model_id)
client.log_model_params(plain.model_id, {"lr": "0.1"})
client.set_logged_model_tags(plain.model_id, {"tag1": "value1", "tag2": "value2"})
client.set_logged_model_tags(plain.model_id, {"tag1": "value3"})
client.delete_logged_model_tag(plain.model_id, "tag2")
try:
    client.delete_logged_model_tag(plain.model_id, "tag2")
    missing_tag = None
except MlflowException as err:
    missing_tag = str(err)
ready = client.finalize_logged_model(plain.model_id, LoggedModelStatus.READY).status.name
failed = client.finalize_logged_model(plain.model_id, LoggedModelStatus.FAILED).status.name
after = client.get_logged_model(plain.model_id)
client.delete_logged_model(full.model_id)
try:
    client.get_logged_model(full.model_id)
    deleted = None
except MlflowException as err:
    deleted = str(err)
print(json.dumps({
    "plain_id": plain.model_id, "plain_name": plain.name, "plain_status": plain.status.name,
    "full": {"name": loaded.name, "type": loaded.model_type, "run": loaded.source_run_id,
             "params": loaded.params, "tags": loaded.tags, "experiment": loaded.experiment_id == exp},
    "after": {"params": after.params, "tags": after.tags},
    "ready": ready, "failed": failed, "missing_tag": missing_tag, "deleted": deleted,
    "left": [m.model_id for m in client.search_logged_models(experiment_ids=[exp])]}))
"""


def test_logged_model_lifecycle_without_a_run(platform: Platform, run_mlflow) -> None:
    out = run_mlflow(LIFECYCLE).result
    assert out["plain_id"].startswith("m-") and len(out["plain_id"]) == 34
    assert out["plain_name"] and out["plain_status"] == "PENDING"
    assert out["full"] == {"name": "my_model", "type": "LLM", "run": "123", "params": {"param": "value"},
                           "tags": {"tag": "value"}, "experiment": True}
    assert out["after"] == {"params": {"lr": "0.1"}, "tags": {"tag1": "value3"}}
    assert out["ready"] == "READY" and out["failed"] == "FAILED"
    assert "No tag with key 'tag2'" in out["missing_tag"]
    assert "not found" in out["deleted"]
    assert out["left"] == [out["plain_id"]]
    with httpx.Client(base_url=platform.gateway, headers=platform.headers) as http:
        events = http.get(f"/api/v1/registry/projects/default/logged-models/{out['plain_id']}").json()
        assert events["status"] == "failed" and events["tags"] == {"tag1": "value3"}


SEARCH = """
import json, time
from mlflow import MlflowClient
from mlflow.entities import LoggedModelInput, LoggedModelOutput

client = MlflowClient()
exp = client.create_experiment("logged-models-search")
first = client.create_logged_model(exp, name="first", params={"lr": "0.1"}, tags={"team": "a"})
time.sleep(0.002)
second = client.create_logged_model(exp, name="second", params={"lr": "0.2"})
page_1 = client.search_logged_models(experiment_ids=[exp], max_results=1)
page_2 = client.search_logged_models(experiment_ids=[exp], max_results=1, page_token=page_1.token)
run = client.create_run(exp)
client.log_metric(run.info.run_id, key="acc", value=0.9, timestamp=123456789, step=1,
                  dataset_name="eval", dataset_digest="d1", model_id=first.model_id)
client.log_metric(run.info.run_id, key="acc", value=0.5, step=1, model_id=second.model_id)
client.log_outputs(run.info.run_id, [LoggedModelOutput(first.model_id, 3)])
client.log_inputs(run.info.run_id, models=[LoggedModelInput(model_id=second.model_id)])
got = client.get_run(run.info.run_id)
names = lambda found: [m.name for m in found]
metric = client.get_logged_model(first.model_id).metrics[0]
print(json.dumps({
    "page_1": names(page_1), "token": page_1.token is not None,
    "page_2": names(page_2), "last": page_2.token is None,
    "by_name": names(client.search_logged_models(experiment_ids=[exp], filter_string="name = 'first'")),
    "by_param": names(client.search_logged_models(experiment_ids=[exp], filter_string="params.lr = '0.2'")),
    "by_tag_and_metric": names(client.search_logged_models(
        experiment_ids=[exp], filter_string="tags.team = 'a' AND metrics.acc > 0.8")),
    "by_like": names(client.search_logged_models(experiment_ids=[exp], filter_string="name LIKE 'sec%'")),
    "datasets": names(client.search_logged_models(
        experiment_ids=[exp], datasets=[{"dataset_name": "eval", "dataset_digest": "d1"}])),
    "oldest_first": names(client.search_logged_models(
        experiment_ids=[exp], order_by=[{"field_name": "creation_timestamp", "ascending": True}])),
    "by_metric": names(client.search_logged_models(
        experiment_ids=[exp], order_by=[{"field_name": "metrics.acc", "ascending": False}])),
    "metric": {"key": metric.key, "value": metric.value, "timestamp": metric.timestamp, "step": metric.step,
               "run": metric.run_id == run.info.run_id, "dataset": [metric.dataset_name, metric.dataset_digest],
               "model": metric.model_id == first.model_id},
    "outputs": [[o.model_id == first.model_id, o.step] for o in got.outputs.model_outputs],
    "inputs": [i.model_id == second.model_id for i in got.inputs.model_inputs]}))
"""


def test_logged_model_search_metrics_and_run_links(run_mlflow) -> None:
    out = run_mlflow(SEARCH).result
    assert out["page_1"] == ["second"] and out["token"]
    assert out["page_2"] == ["first"] and out["last"]
    assert out["by_name"] == ["first"] and out["by_param"] == ["second"]
    assert out["by_tag_and_metric"] == ["first"] and out["by_like"] == ["second"]
    assert out["datasets"] == ["first"]
    assert out["oldest_first"] == ["first", "second"] and out["by_metric"] == ["first", "second"]
    assert out["metric"] == {"key": "acc", "value": 0.9, "timestamp": 123456789, "step": 1, "run": True,
                             "dataset": ["eval", "d1"], "model": True}
    assert out["outputs"] == [[True, 3]] and out["inputs"] == [True]


def test_a_bad_filter_says_what_to_write(platform: Platform) -> None:
    with httpx.Client(base_url=platform.gateway, headers=platform.headers) as http:
        resp = http.post("/api/2.0/mlflow/logged-models/search",
                         json={"experiment_ids": ["0"], "filter": "name ~ 'x'"})
        assert resp.status_code == 400
        assert resp.json()["error_code"] == "INVALID_PARAMETER_VALUE"
        assert "<field> <op> <value>" in resp.json()["message"]
        resp = http.get("/api/2.0/mlflow/logged-models/m-../x")
        assert resp.status_code in (400, 404)


FILES = """
import json, mlflow, requests, os
from mlflow import MlflowClient

class Model(mlflow.pyfunc.PythonModel):
    def predict(self, context, model_input):
        return model_input

client = MlflowClient()
uri = os.environ["MLFLOW_TRACKING_URI"]
headers = {"Authorization": "Bearer " + os.environ["MLFLOW_TRACKING_TOKEN"]}
# requirements given, as a project pins them: not inferred by loading the model in a new Python
# (seconds each, and all on this machine: nothing of it reaches the server)
alone = mlflow.pyfunc.log_model(name="model", python_model=Model(), pip_requirements=["mlflow"])
with mlflow.start_run() as run:
    held = mlflow.pyfunc.log_model(name="held", python_model=Model(), pip_requirements=["mlflow"])
listing = {}
for info in (alone, held):
    resp = requests.get(f"{uri}/ajax-api/2.0/mlflow/logged-models/{info.model_id}/artifacts/directories",
                        headers=headers)
    text = requests.get(f"{uri}/ajax-api/2.0/mlflow/logged-models/{info.model_id}/artifacts/files",
                        params={"artifact_file_path": "MLmodel"}, headers=headers)
    listing[info.model_id] = {"paths": [f["path"] for f in resp.json()["files"]],
                              "mlmodel": info.model_id in text.text,
                              "status": client.get_logged_model(info.model_id).status.name}
loaded = mlflow.pyfunc.load_model(f"runs:/{run.info.run_id}/held")
again = mlflow.pyfunc.load_model(f"models:/{alone.model_id}")
print(json.dumps({"alone": listing[alone.model_id], "held": listing[held.model_id],
                  "alone_run": client.get_logged_model(alone.model_id).source_run_id,
                  "held_run": client.get_logged_model(held.model_id).source_run_id == run.info.run_id,
                  "loaded": loaded.predict([1, 2]) == [1, 2], "again": again.predict([3]) == [3]}))
"""


def test_logged_model_files_with_and_without_a_run(run_mlflow) -> None:
    out = run_mlflow(FILES).result
    for which in ("alone", "held"):
        assert "MLmodel" in out[which]["paths"] and out[which]["mlmodel"], which
        assert out[which]["status"] == "READY", which
    assert not out["alone_run"] and out["held_run"]  # no run: the client reads an unset field
    assert out["loaded"] and out["again"]
