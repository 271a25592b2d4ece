"""The Python SDK: start_run records how a run ended; retries reuse the idempotency key."""

from __future__ import annotations

import pytest

import cairn

from model_helpers import push_model_folder
from platform_harness import Platform, stream_last_seq, wait_metrics_settled

pytestmark = pytest.mark.shared_stack  # see tests/conftest.py


@pytest.fixture()
def client(platform: Platform) -> cairn.Client:
    with cairn.Client(platform.gateway, token=platform.token) as c:
        yield c


def test_start_run_finishes_and_records(client: cairn.Client) -> None:
    with cairn.start_run(project="sdk", experiment="exp", params={"lr": 0.01}, tags={"a": "b"},
                         client=client) as run:
        run.log_params({"epochs": 3})
        run.set_tag("stage", "train")
        run.set_notes("first try")
        assert run.refresh()["status"] == "running"
    record = client.get_run("sdk", run.id)
    assert record["status"] == "finished"
    assert record["params"] == {"lr": "0.01", "epochs": "3"}
    assert record["tags"] == {"a": "b", "stage": "train", "mlflow.note.content": "first try"}
    exp = client.get_experiment_by_name("sdk", "exp")
    assert exp is not None and record["experiment_id"] == exp["id"]


def test_exception_marks_run_failed(client: cairn.Client) -> None:
    with pytest.raises(ZeroDivisionError):
        with cairn.start_run(project="sdk", client=client) as run:
            1 / 0  # noqa: B018
    record = client.get_run("sdk", run.id)
    assert record["status"] == "failed"
    assert "ZeroDivisionError" in record["status_message"]


def test_changing_a_param_raises_api_error(client: cairn.Client) -> None:
    with cairn.start_run(project="sdk", params={"lr": 1}, client=client) as run:
        with pytest.raises(cairn.ApiError) as err:
            run.log_param("lr", 2)
        assert err.value.status == 409 and "immutable" in err.value.message


def test_explicit_idempotency_key_appends_once(client: cairn.Client, platform: Platform) -> None:
    client.ensure_project("sdk")
    wait_metrics_settled(platform)  # the earlier tests' runs: their metric.summarized follows a moment later
    before = stream_last_seq(platform)
    first = client.request("POST", "/api/v1/registry/projects/sdk/runs", json={}, idempotency_key="k-1")
    again = client.request("POST", "/api/v1/registry/projects/sdk/runs", json={}, idempotency_key="k-1")
    assert first["id"] == again["id"]
    assert stream_last_seq(platform) == before + 1


def test_models_through_the_sdk(client: cairn.Client, platform: Platform) -> None:
    client.ensure_project("sdk-models")
    run = client.create_run("sdk-models")
    client.create_model("sdk-models", "clf")
    version = client.create_model_version("sdk-models", "clf", run_id=run["id"], artifact_digest=push_model_folder(platform.gateway, platform.headers, "sdk-models"))
    client.set_alias("sdk-models", "clf", "production", version["version"])
    assert client.get_alias("sdk-models", "clf", "production")["version"] == 1
    assert [h["action"] for h in client.alias_history("sdk-models", "clf", "production")] == ["set"]
    assert client.list_models("sdk-models")[0]["aliases"] == {"production": 1}
