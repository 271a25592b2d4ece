"""The MLflow acceptance harness (scripts/mlflow_acceptance, scripts/mlflow-acceptance) on its own.

MLflow's repository is not here (the real run is the script, docs/mlflow.md "MLflow's own test
suite"), so the plugin is run on three stand-in test modules laid out and shaped like MLflow's
(same file names, same server fixtures with the same arguments, parametrized by store type,
each fixture raising if it is still MLflow's), through the runner script against this session's
gateway: the fixtures must be replaced, each test must get a fresh project, bare ``requests``
must carry the token, and the counts must come out as declared.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "scripts"))

from mlflow_acceptance import catalog  # noqa: E402

pytestmark = pytest.mark.shared_stack

REST_TRACKING = '''
import pytest
import requests
from mlflow import MlflowClient


@pytest.fixture(params=["file", "sqlalchemy"])
def store_type(request):
    return request.param


@pytest.fixture(scope="module")
def cached_db(tmp_path_factory):
    raise RuntimeError("MLflow's own cached_db ran")


@pytest.fixture
def mlflow_client(store_type, tmp_path, cached_db):
    raise RuntimeError("MLflow's own server fixture ran")


@pytest.fixture
def cli_env(mlflow_client):
    raise RuntimeError("MLflow's own cli_env ran")


def test_same_name_a(mlflow_client):
    import mlflow

    assert "/mlflow/acc-" in mlflow_client.tracking_uri
    assert mlflow.get_tracking_uri() == mlflow_client.tracking_uri  # as MLflow's fixture leaves it
    mlflow_client.create_experiment("same name")


def test_same_name_b(mlflow_client):
    mlflow_client.create_experiment("same name")  # a fresh project: no RESOURCE_ALREADY_EXISTS


def test_bare_requests(mlflow_client):
    response = requests.get(f"{mlflow_client.tracking_uri}/api/2.0/mlflow/experiments/search",
                            params={"max_results": 10})
    assert response.status_code == 200, response.text
    response = requests.post(f"{mlflow_client.tracking_uri}/api/2.0/mlflow/experiments/search",
                             json={"max_results": 10}, auth=None)  # as MLflow's helpers call it
    assert response.status_code == 200, response.text


def test_cli_env(cli_env, mlflow_client):
    assert cli_env["MLFLOW_TRACKING_URI"] == mlflow_client.tracking_uri
    assert cli_env["MLFLOW_TRACKING_TOKEN"]


def test_fails(mlflow_client):
    assert 1 == 2, "a real difference"


def test_artifacts(mlflow_client):
    raise AssertionError("a not-applicable test must not run")
'''

MODEL_REGISTRY = '''
import pytest


@pytest.fixture(scope="module")
def cached_db(tmp_path_factory):
    raise RuntimeError("MLflow's own cached_db ran")


@pytest.fixture(params=["file", "sqlalchemy"])
def client(request, tmp_path, cached_db):
    raise RuntimeError("MLflow's own server fixture ran")


@pytest.mark.parametrize("n", [1, 2])
def test_model(client, n):
    client.create_registered_model("model")  # once in each of two fresh projects
'''

ARTIFACTS = '''
import pytest
import requests
from mlflow import MlflowClient


@pytest.fixture(scope="module")
def artifacts_server():
    raise RuntimeError("MLflow's own server started")


@pytest.mark.parametrize("n", [1, 2])
def test_server(artifacts_server, n):
    assert artifacts_server.default_artifact_root.startswith(artifacts_server.url + "/")
    MlflowClient(artifacts_server.url).create_experiment("again")  # fresh project per test
    response = requests.get(f"{artifacts_server.url}/api/2.0/mlflow/experiments/get-by-name",
                            params={"experiment_name": "again"})
    assert response.status_code == 200, response.text


def test_log_artifact(artifacts_server):
    raise AssertionError("a not-applicable test must not run")
'''


def test_not_applicable_reasons_cover_every_parametrization() -> None:
    path = "tests/tracking/test_rest_tracking.py"
    assert catalog.not_applicable_reason(f"{path}::test_artifacts[sqlalchemy]") == catalog.NOT_APPLICABLE["test_artifacts"]
    assert catalog.not_applicable_reason(f"{path}::test_artifacts") is not None
    assert catalog.not_applicable_reason(f"{path}::test_artifacts_x[sqlalchemy]") is None
    assert all(reason.strip() for reason in catalog.NOT_APPLICABLE.values())


def test_only_the_counted_store_type_is_run() -> None:
    assert catalog.counted({"store_type": catalog.COUNTED_STORE})
    assert not catalog.counted({"store_type": "file"})
    assert not catalog.counted({"client": "file", "n": 1})
    assert catalog.counted({"n": 1})  # no store parameter: counted


def test_summary_counts_each_test_once_with_its_worst_outcome() -> None:
    summary = catalog.summarize([
        {"nodeid": "a", "outcome": "passed"},
        {"nodeid": "a", "outcome": "failed", "message": "[teardown] leaked a run"},
        {"nodeid": "b", "outcome": "passed"},
        {"nodeid": "c", "outcome": "not_applicable", "message": "own server"},
        {"nodeid": "d", "outcome": "skipped", "message": "file store only"},
    ])
    assert summary.as_json() == {
        "total": 4, "passed": 1, "failed": 1, "not_applicable": 1, "skipped": 1,
        "failures": {"a": "[teardown] leaked a run"}, "not_applicable_tests": {"c": "own server"},
        "skipped_tests": {"d": "file store only"}}
    with pytest.raises(ValueError, match="unknown outcome"):
        catalog.summarize([{"nodeid": "x", "outcome": "xpassed"}])


def test_the_script_runs_mlflow_shaped_tests_against_cairn(platform, tmp_path: Path) -> None:
    tracking = tmp_path / "mlflow" / "tests" / "tracking"
    tracking.mkdir(parents=True)
    (tmp_path / "mlflow" / "pytest.ini").write_text("[pytest]\n")
    for name, body in (("test_rest_tracking.py", REST_TRACKING), ("test_model_registry.py", MODEL_REGISTRY),
                       ("test_mlflow_artifacts.py", ARTIFACTS)):
        (tracking / name).write_text(textwrap.dedent(body))
    proc = subprocess.run([sys.executable, str(REPO / "scripts" / "mlflow-acceptance"), "--json",
                           "--mlflow", str(tmp_path / "mlflow"), "--python", sys.executable,
                           "--gateway", platform.gateway, "--token", platform.token],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 1, proc.stderr[-4000:]  # one test fails on purpose
    result = json.loads(proc.stdout)
    fails = "tests/tracking/test_rest_tracking.py::test_fails[sqlalchemy]"
    assert result["failures"].keys() == {fails}, result
    assert "a real difference" in result["failures"][fails]
    assert sorted(result["not_applicable_tests"]) == [
        "tests/tracking/test_mlflow_artifacts.py::test_log_artifact",
        "tests/tracking/test_rest_tracking.py::test_artifacts[sqlalchemy]"]
    assert result["not_applicable_tests"]["tests/tracking/test_mlflow_artifacts.py::test_log_artifact"] == \
        catalog.NOT_APPLICABLE["test_log_artifact"]
    # the file-store half is deselected, not counted: 6 + 2 + 3 tests
    assert (result["total"], result["passed"], result["failed"], result["not_applicable"]) == (11, 8, 1, 2), result
    assert result["client"] == __import__("mlflow").__version__
