"""MLflow clients authenticate with Cairn tokens and are held to their project roles."""

from __future__ import annotations

import httpx
import loopback
import pytest

from platform_harness import Platform

pytestmark = pytest.mark.shared_stack  # see tests/conftest.py

TRY_LOGGING = """
import json
import mlflow
from mlflow.exceptions import MlflowException
try:
    with mlflow.start_run():
        mlflow.log_param("a", 1)
    outcome = {"ok": True}
except MlflowException as err:
    outcome = {"ok": False, "code": err.error_code, "message": err.message}
print(json.dumps(outcome))
"""


@pytest.fixture(scope="module")
def viewer_token(platform: Platform) -> str:
    with httpx.Client(base_url=f"{platform.gateway}/api/v1", headers=platform.headers) as cairn:
        assert cairn.post("/registry/projects", json={"name": "team"}).status_code == 201
        token = cairn.post("/tokens", json={"user": "vera"}).json()["token"]
        assert cairn.post("/projects/team/members", json={"user": "vera", "role": "viewer"}).status_code in (200, 201)
    return token


def test_without_a_token_the_client_gets_unauthenticated(run_mlflow) -> None:
    out = run_mlflow(TRY_LOGGING, token=None).result
    assert out == {"ok": False, "code": "UNAUTHENTICATED", "message": out["message"]}
    assert "token" in out["message"]


def test_without_a_token_the_api_answers_401_in_mlflow_shape(platform: Platform) -> None:
    resp = loopback.get(f"{platform.gateway}/api/2.0/mlflow/experiments/get", params={"experiment_id": "0"})
    assert resp.status_code == 401
    assert resp.json()["error_code"] == "UNAUTHENTICATED"


def test_a_viewer_can_read_but_not_log(platform: Platform, viewer_token: str, run_mlflow) -> None:
    uri = f"{platform.gateway}/mlflow/team"
    out = run_mlflow(TRY_LOGGING, token=viewer_token, uri=uri).result
    assert out["ok"] is False and out["code"] == "PERMISSION_DENIED"
    read = run_mlflow("""
        import json, mlflow
        print(json.dumps({"n": len(mlflow.search_experiments())}))
    """, token=viewer_token, uri=uri).result
    assert read["n"] >= 1


def test_a_non_member_cannot_see_the_project(platform: Platform, run_mlflow) -> None:
    with httpx.Client(base_url=f"{platform.gateway}/api/v1", headers=platform.headers) as cairn:
        outsider = cairn.post("/tokens", json={"user": "otto"}).json()["token"]
    resp = loopback.get(f"{platform.gateway}/mlflow/team/api/2.0/mlflow/experiments/search",
                     headers={"Authorization": f"Bearer {outsider}"})
    assert resp.status_code == 404 and resp.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"
