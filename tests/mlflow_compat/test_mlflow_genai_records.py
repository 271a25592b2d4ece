"""MLflow 3's GenAI records through the real MLflow client: evaluation datasets (create, read,
search by experiment, tag and name order, tags, records upserted by their inputs, delete) and
registered scorers (versions, latest, one version or all deleted)."""

from __future__ import annotations

import httpx
import pytest

from platform_harness import Platform

pytestmark = pytest.mark.shared_stack  # see tests/conftest.py

DATASETS = """
import json, os, requests
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

client = MlflowClient()
uri, headers = os.environ["MLFLOW_TRACKING_URI"], {"Authorization": "Bearer " + os.environ["MLFLOW_TRACKING_TOKEN"]}
exp1 = client.create_experiment("genai-datasets-1")
exp2 = client.create_experiment("genai-datasets-2")
one = client.create_dataset(name="gd_one", experiment_id=exp1, tags={"team": "ml", "env": "dev"})
two = client.create_dataset(name="gd_two", experiment_id=[exp1, exp2], tags={"team": "data"})
client.set_dataset_tags(one.dataset_id, {"env": "staging", "extra": "x"})
client.delete_dataset_tag(one.dataset_id, "extra")
got = client.get_dataset(one.dataset_id)
names = lambda found: sorted(d.name for d in found if d.name.startswith("gd_"))
records = lambda recs: requests.post(f"{uri}/api/3.0/mlflow/datasets/{one.dataset_id}/records", headers=headers,
                                     json={"records": json.dumps(recs)}).json()
first = records([{"inputs": {"q": "a"}, "expectations": {"x": 1}}, {"inputs": {"q": "b"}}])
second = records([{"inputs": {"q": "a"}, "expectations": {"y": 2}, "tags": {"t": "1"}}, {"inputs": {"q": "c"}}])
rows = json.loads(requests.get(f"{uri}/api/3.0/mlflow/datasets/{one.dataset_id}/records", headers=headers).json()["records"])
bad = requests.post(f"{uri}/api/3.0/mlflow/datasets/not-an-id/records", headers=headers, json={"records": "[]"})
exp2_names = names(client.search_datasets(experiment_ids=[exp2]))
by_tag = names(client.search_datasets(filter_string="tags.team = 'ml'"))
ordered = [d.name for d in client.search_datasets(order_by=["name DESC"]) if d.name.startswith("gd_")]
client.delete_dataset(two.dataset_id)
try:
    client.get_dataset(two.dataset_id)
    gone = None
except MlflowException as err:
    gone = str(err)
print(json.dumps({
    "tags": {k: v for k, v in got.tags.items() if not k.startswith("mlflow.")},
    "experiments": [got.experiment_ids == [exp1], sorted(two.experiment_ids) == sorted([exp1, exp2])],
    "exp2": exp2_names, "by_tag": by_tag, "ordered": ordered,
    "first": first, "second": second,
    "rows": {r["inputs"]["q"]: [r["expectations"], r["tags"]] for r in rows},
    "bad": [bad.status_code, bad.json()["error_code"]], "gone": gone,
    "after": names(client.search_datasets())}))
"""


def test_evaluation_datasets(run_mlflow) -> None:
    out = run_mlflow(DATASETS).result
    assert out["tags"] == {"team": "ml", "env": "staging"}
    assert out["experiments"] == [True, True]
    assert out["exp2"] == ["gd_two"] and out["by_tag"] == ["gd_one"]
    assert out["ordered"] == ["gd_two", "gd_one"]
    assert out["first"] == {"inserted_count": 2, "updated_count": 0}
    assert out["second"] == {"inserted_count": 1, "updated_count": 1}
    assert out["rows"] == {"a": [{"x": 1, "y": 2}, {"t": "1"}], "b": [{}, {}], "c": [{}, {}]}
    assert out["bad"] == [404, "RESOURCE_DOES_NOT_EXIST"]
    assert "not found" in out["gone"] and out["after"] == ["gd_one"]


SCORERS = """
import json
from mlflow import MlflowClient

client = MlflowClient()
store = client._tracking_client.store
exp = client.create_experiment("genai-scorers")
v1 = store.register_scorer(exp, "judge", json.dumps({"name": "judge", "v": 1}))
v2 = store.register_scorer(exp, "judge", json.dumps({"name": "judge", "v": 2}))
store.register_scorer(exp, "other", json.dumps({"name": "other"}))
latest = {s.scorer_name: s.scorer_version for s in store.list_scorers(exp)}
first = store.get_scorer(exp, "judge", version=1)
newest = store.get_scorer(exp, "judge")
store.delete_scorer(exp, "judge", version=1)
left = [s.scorer_version for s in store.list_scorer_versions(exp, "judge")]
store.delete_scorer(exp, "judge")
print(json.dumps({"versions": [v1.scorer_version, v2.scorer_version], "latest": latest,
                  "first": first.scorer_version,
                  "newest": newest.scorer_version, "left": left,
                  "after": [s.scorer_name for s in store.list_scorers(exp)], "experiment_id": exp}))
"""


def test_scorer_versions(platform: Platform, run_mlflow) -> None:
    out = run_mlflow(SCORERS).result
    assert out["versions"] == [1, 2] and out["latest"] == {"judge": 2, "other": 1}
    assert out["first"] == 1 and out["newest"] == 2 and out["left"] == [2] and out["after"] == ["other"]
    with httpx.Client(base_url=platform.gateway, headers=platform.headers) as http:
        resp = http.request("DELETE", "/api/3.0/mlflow/scorers/delete",
                            json={"experiment_id": out["experiment_id"], "name": "judge"})
        assert resp.status_code == 404 and resp.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"
        resp = http.get("/api/3.0/mlflow/scorers/get",
                        params={"experiment_id": out["experiment_id"], "name": "other", "version": 7})
        assert resp.status_code == 404
