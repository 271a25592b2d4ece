"""MLflow's model registry over Cairn's models: register, alias, load back and predict."""

from __future__ import annotations

import httpx
import pytest

from platform_harness import Platform

pytestmark = pytest.mark.shared_stack  # see tests/conftest.py

TRAIN_AND_REGISTER = """
import json
import mlflow
import numpy as np
from mlflow import MlflowClient
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

mlflow.set_experiment("registry")
X, y = load_iris(return_X_y=True)
with mlflow.start_run() as run:
    model = LogisticRegression(max_iter=300).fit(X, y)
    mlflow.sklearn.log_model(model, name="model", serialization_format="cloudpickle")
version = mlflow.register_model(f"runs:/{run.info.run_id}/model", "iris-clf")
client = MlflowClient()
client.set_registered_model_alias("iris-clf", "champion", version.version)
loaded = mlflow.pyfunc.load_model("models:/iris-clf@champion")
predicted = loaded.predict(X[:10])
second = mlflow.register_model(f"runs:/{run.info.run_id}/model", "iris-clf")
client.transition_model_version_stage("iris-clf", second.version, "Staging")
by_alias = client.get_model_version_by_alias("iris-clf", "champion")
found = client.search_model_versions("name = 'iris-clf'")
print(json.dumps({"run_id": run.info.run_id, "version": version.version, "second": second.version,
                  "predicted": [int(p) for p in predicted], "expected": [int(p) for p in model.predict(X[:10])],
                  "alias_version": by_alias.version, "stages": sorted(v.current_stage for v in found),
                  "download_uri": client.get_model_version_download_uri("iris-clf", version.version)}))
"""


def test_register_alias_load_and_predict(platform: Platform, run_mlflow) -> None:
    out = run_mlflow(TRAIN_AND_REGISTER).result
    assert out["predicted"] == out["expected"]
    assert out["version"] == "1" and out["alias_version"] == "1" and out["second"] == "2"
    assert out["stages"] == ["None", "Staging"]
    assert out["download_uri"].startswith("mlflow-artifacts:/default/")
    with httpx.Client(base_url=f"{platform.gateway}/api/v1/registry", headers=platform.headers) as cairn:
        model = cairn.get("/projects/default/models/iris-clf").json()
        assert model["aliases"] == {"champion": 1, "staging": 2}
        version = cairn.get("/projects/default/models/iris-clf/versions/1").json()
        assert version["run_id"] == out["run_id"]
        assert len(version["artifact_digest"]) == 64  # a manifest of the model's files


def test_production_stays_admin_only(platform: Platform, run_mlflow) -> None:
    with httpx.Client(base_url=f"{platform.gateway}/api/v1", headers=platform.headers) as cairn:
        assert cairn.post("/registry/projects", json={"name": "promo"}).status_code == 201
        editor = cairn.post("/tokens", json={"user": "eddie"}).json()["token"]
        assert cairn.post("/projects/promo/members", json={"user": "eddie", "role": "editor"}).status_code in (200, 201)
    result = run_mlflow("""
        import json
        import mlflow
        from mlflow import MlflowClient
        from mlflow.exceptions import MlflowException
        with mlflow.start_run() as run:
            mlflow.log_text("weights", "model/weights.txt")
            mlflow.log_text("flavors: {}", "model/MLmodel")
        version = mlflow.register_model(f"runs:/{run.info.run_id}/model", "ranker")
        client = MlflowClient()
        client.set_registered_model_alias("ranker", "staging", version.version)
        try:
            client.set_registered_model_alias("ranker", "production", version.version)
            code = None
        except MlflowException as err:
            code = err.error_code
        print(json.dumps({"code": code}))
    """, token=editor, uri=f"{platform.gateway}/mlflow/promo").result
    assert result["code"] == "PERMISSION_DENIED"


def test_missing_model_raises_resource_does_not_exist(run_mlflow) -> None:
    out = run_mlflow("""
        import json
        from mlflow import MlflowClient
        from mlflow.exceptions import MlflowException
        try:
            MlflowClient().get_registered_model("no-such-model")
        except MlflowException as err:
            print(json.dumps({"code": err.error_code}))
    """).result
    assert out["code"] == "RESOURCE_DOES_NOT_EXIST"


def test_external_sources_are_registered_without_files(platform: Platform) -> None:
    """MLflow accepts an s3:// source; Cairn records it, with no digest and the reason (see
    test_mlflow_registry_parity.py for the rest of that behaviour)."""
    with httpx.Client(base_url=platform.gateway, headers=platform.headers) as http:
        http.post("/api/2.0/mlflow/registered-models/create", json={"name": "ext"})
        resp = http.post("/api/2.0/mlflow/model-versions/create", json={"name": "ext", "source": "s3://bucket/model"})
        assert resp.status_code == 200, resp.text
        assert resp.json()["model_version"]["source"] == "s3://bucket/model"
        record = http.get(f"/api/v1/registry/projects/default/models/ext/versions/{resp.json()['model_version']['version']}")
    assert record.json()["artifact_digest"] is None
    assert "mlflow-artifacts" in record.json()["files_unavailable"]["reason"]
