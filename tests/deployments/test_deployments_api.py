"""The deployments service on a real platform (nats-server and every service process), with a
real HTTP server on loopback standing in for the scheduler's replica-set API (it records the
reconciler's calls). Its own platform: it restarts the deployments service."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from click.testing import CliRunner
from replica_set_recorder import ReplicaSetRecorder

from cairn.cli.main import cli

from model_helpers import model_digest, push_model
from platform_harness import Platform, read_all_events, running, stream_last_seq

DIGEST = model_digest()


@pytest.fixture(scope="module")
def recorder() -> Iterator[ReplicaSetRecorder]:
    rec = ReplicaSetRecorder().start()
    yield rec
    rec.stop()


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory, recorder: ReplicaSetRecorder) -> Iterator[Platform]:
    plat = Platform(tmp_path_factory.mktemp("deployments"),
                    service_env={"deployments": {"CAIRN_SCHEDULER_URL": recorder.url}})
    with running(plat) as started:
        yield started


@pytest.fixture(scope="module")
def admin(platform: Platform) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=f"{platform.gateway}/api/v1", headers=platform.headers, timeout=30) as client:
        yield client


@pytest.fixture(scope="module")
def project(admin: httpx.Client) -> str:
    name = f"dep{os.getpid()}"
    admin.post("/registry/projects", json={"name": name}).raise_for_status()
    run_id = admin.post(f"/registry/projects/{name}/runs", json={}).json()["id"]
    admin.post(f"/registry/projects/{name}/models", json={"name": "fraud-model"}).raise_for_status()
    push_model(admin, name)
    for _ in range(3):
        admin.post(f"/registry/projects/{name}/models/fraud-model/versions",
                   json={"run_id": run_id, "artifact_digest": DIGEST}).raise_for_status()
    set_alias(admin, name, "production", 1)
    set_alias(admin, name, "staging", 1)
    return name


def set_alias(admin: httpx.Client, project: str, alias: str, version: int) -> None:
    admin.put(f"/registry/projects/{project}/models/fraud-model/aliases/{alias}",
              json={"version": version}).raise_for_status()


def member(admin: httpx.Client, project: str, user: str, role: str) -> httpx.Client:
    token = admin.post("/tokens", json={"user": user}).json()["token"]
    admin.post(f"/projects/{project}/members", json={"user": user, "role": role}).raise_for_status()
    return httpx.Client(base_url=str(admin.base_url), headers={"Authorization": f"Bearer {token}"}, timeout=30)


def deploy(client: httpx.Client, project: str, name: str, **kw: Any) -> httpx.Response:
    body = {"name": name, "environment": "dev", "model": "fraud-model", "follows": "staging", "replicas": 2} | kw
    return client.post(f"/deployments/projects/{project}/deployments", json=body)


def events_of(platform: Platform, project: str, name: str, event_type: str) -> list[dict[str, Any]]:
    return [e for e in read_all_events(platform.nats_url)
            if e["type"] == event_type and e["project"] == project and e["aggregate_id"] == name]


def wait_version(admin: httpx.Client, project: str, name: str, version: int, timeout: float = 20.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        config = admin.get(f"/deployments/projects/{project}/deployments/{name}").json()
        if config["version"] == version:
            return config
        time.sleep(0.05)
    raise TimeoutError(f"deployment {name} did not reach version {version}: {config}")


def test_create_show_list_and_the_replica_set_is_put(admin: httpx.Client, project: str, platform: Platform,
                                                     recorder: ReplicaSetRecorder) -> None:
    editor = member(admin, project, "dep-editor", "editor")
    resp = deploy(editor, project, "fraud", batching={"max_batch": 16, "max_wait_ms": 2}, sample_rate=0.25)
    assert resp.status_code == 201, resp.text
    config = resp.json()
    assert {k: config[k] for k in ("name", "environment", "model", "follows", "version", "previous_version",
                                   "replicas", "sample_rate", "public", "deleted")} == {
        "name": "fraud", "environment": "dev", "model": "fraud-model", "follows": "staging", "version": 1,
        "previous_version": None, "replicas": 2, "sample_rate": 0.25, "public": False, "deleted": False}
    assert config["traffic"] == {"canary": None, "shadow": None}
    assert config["batching"] == {"max_batch": 16, "max_wait_ms": 2.0} and config["seq"] > 0
    assert editor.get(f"/deployments/projects/{project}/deployments/fraud").json() == config
    listing = editor.get(f"/deployments/projects/{project}/deployments").json()
    row = listing["environments"]["dev"][0]
    assert row["name"] == "fraud" and row["version"] == 1 and row["run_id"]
    assert row["replicas"] == {"healthy": 0, "total": 2} and row["requests_per_s"] == 0.0  # nothing answered yet
    call = recorder.wait_for("PUT", f"/projects/{project}/replica-sets/deploy-fraud", replicas=2)
    assert call["signed"]
    assert call["body"]["command"] == ["cairn", "serve", "--deployment", f"{project}/fraud", "--port", "0",
                                       "--host", "0.0.0.0"]
    # a replica reports itself: healthy 1 of 2
    report = {"url": "http://127.0.0.1:9", "version": 1, "state": "started", "reason": ""}
    assert editor.put(f"/deployments/projects/{project}/deployments/fraud/replicas/job1", json=report).status_code == 200
    row = editor.get(f"/deployments/projects/{project}/deployments").json()["deployments"][0]
    assert row["replicas"] == {"healthy": 1, "total": 2}


def test_a_viewer_cannot_deploy_and_nothing_is_appended(admin: httpx.Client, project: str, platform: Platform) -> None:
    viewer = member(admin, project, "dep-viewer", "viewer")
    before = stream_last_seq(platform)
    resp = deploy(viewer, project, "by-viewer")
    assert resp.status_code == 403, resp.text
    assert viewer.get(f"/deployments/projects/{project}/deployments/fraud").status_code == 200
    assert stream_last_seq(platform) == before


def test_prod_needs_admin(admin: httpx.Client, project: str, platform: Platform) -> None:
    editor = member(admin, project, "dep-editor2", "editor")
    before = stream_last_seq(platform)
    resp = deploy(editor, project, "fraud-prod", environment="prod", follows="production")
    assert resp.status_code == 403 and "admin" in resp.text, resp.text
    assert stream_last_seq(platform) == before
    assert deploy(admin, project, "fraud-prod", environment="prod", follows="production").status_code == 201
    assert editor.post(f"/deployments/projects/{project}/deployments/fraud-prod/scale",
                       json={"replicas": 5}).status_code == 403
    # a protected environment of the project's own choosing; then prod unprotected
    assert editor.post(f"/deployments/projects/{project}/environments/qa/protect").status_code == 403
    assert admin.post(f"/deployments/projects/{project}/environments/qa/protect").json()["protected"]
    assert deploy(editor, project, "fraud-qa", environment="qa").status_code == 403
    assert admin.post(f"/deployments/projects/{project}/environments/prod/unprotect").status_code == 200
    assert deploy(editor, project, "fraud-prod2", environment="prod", follows="production").status_code == 201


@pytest.mark.parametrize(("body", "field"), [
    ({"environment": "dev", "model": "fraud-model", "follows": "staging"}, "name"),
    ({"name": "x", "environment": "dev", "model": "fraud-model"}, "follows"),
    ({"name": "x", "environment": "dev", "model": "fraud-model", "version": 99}, "version"),
    ({"name": "x", "environment": "dev", "model": "nope", "version": 1}, "model"),
    ({"name": "x", "environment": "dev", "model": "fraud-model", "version": 1, "replicas": -1}, "replicas"),
    ({"name": "x", "environment": "dev", "model": "fraud-model", "version": 1, "sample_rate": 2}, "sample_rate"),
    ({"name": "Bad Name", "environment": "dev", "model": "fraud-model", "version": 1}, "name"),
])
def test_bad_input_is_a_4xx_naming_the_field_and_changes_nothing(admin: httpx.Client, project: str,
                                                                 platform: Platform, body: dict[str, Any],
                                                                 field: str) -> None:
    before = stream_last_seq(platform)
    resp = admin.post(f"/deployments/projects/{project}/deployments", json=body)
    assert 400 <= resp.status_code < 500, resp.text
    assert field in resp.text, resp.text
    assert stream_last_seq(platform) == before


def test_alias_move_changes_the_version_once_even_after_a_restart(admin: httpx.Client, project: str,
                                                                  platform: Platform) -> None:
    assert deploy(admin, project, "follower", follows="staging").status_code == 201
    set_alias(admin, project, "staging", 2)
    wait_version(admin, project, "follower", 2)
    platform.restart("deployments")
    platform.wait_healthy()
    # another deployment's alias moves after the restart: once the service acted on it, it has
    # looked at "follower" too (each pass looks at every deployment)
    assert deploy(admin, project, "witness", follows="production", environment="prod").status_code == 201
    set_alias(admin, project, "production", 3)
    wait_version(admin, project, "witness", 3)
    moves = events_of(platform, project, "follower", "deployment.version_changed")
    assert [(e["data"]["from"], e["data"]["to"], e["data"]["why"]) for e in moves] == [(1, 2, "alias_moved")]


def test_rollback_goes_back_and_holds(admin: httpx.Client, project: str, platform: Platform) -> None:
    assert deploy(admin, project, "rolling", version=1, follows=None).status_code == 201
    resp = admin.post(f"/deployments/projects/{project}/deployments/rolling/rollback")
    assert resp.status_code == 409 and "nothing to roll back to" in resp.text
    assert admin.post(f"/deployments/projects/{project}/deployments/rolling/version",
                      json={"version": 3}).json()["version"] == 3
    config = admin.post(f"/deployments/projects/{project}/deployments/rolling/rollback").json()
    assert (config["version"], config["previous_version"]) == (1, 3)
    whys = [e["data"]["why"] for e in events_of(platform, project, "rolling", "deployment.version_changed")]
    assert whys == ["manual", "rollback"]


def test_scale_split_and_delete_reach_the_replica_set_api(admin: httpx.Client, project: str,
                                                          recorder: ReplicaSetRecorder) -> None:
    base = f"/deployments/projects/{project}/deployments/scaled"
    assert deploy(admin, project, "scaled", version=1, follows=None).status_code == 201
    recorder.wait_for("PUT", f"/projects/{project}/replica-sets/deploy-scaled", replicas=2)
    assert admin.post(f"{base}/scale", json={"replicas": 3}).json()["replicas"] == 3
    recorder.wait_for("PUT", f"/projects/{project}/replica-sets/deploy-scaled", replicas=3)
    split = admin.put(f"{base}/traffic", json={"canary": {"version": 2, "percent": 10}, "shadow": {"version": 3}})
    assert split.json()["traffic"] == {"canary": {"version": 2, "percent": 10.0}, "shadow": {"version": 3}}
    assert admin.put(f"{base}/traffic", json={}).json()["traffic"] == {"canary": None, "shadow": None}
    assert admin.delete(base).status_code == 204
    recorder.wait_for("DELETE", f"/projects/{project}/replica-sets/deploy-scaled")
    assert admin.get(base).json()["deleted"] is True
    assert admin.post(f"{base}/scale", json={"replicas": 1}).status_code == 404


def test_the_cli_deploys_lists_splits_rolls_back_and_deletes(platform: Platform, project: str) -> None:
    runner = CliRunner(env={"CAIRN_TOKEN": platform.token})

    def run(*args: str) -> object:
        result = runner.invoke(cli, ["--url", platform.gateway, "--json", "deployments", *args],
                               catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return json.loads(result.output) if result.output.strip().startswith(("{", "[")) else result.output

    made = run("create", "-p", project, "cli-fraud", "--env", "staging", "--model", "fraud-model@2",
               "--replicas", "2", "--max-batch", "32")
    assert made["version"] == 2 and made["follows"] is None and made["batching"]["max_batch"] == 32  # type: ignore[index]
    listed = run("list", "-p", project)
    assert "cli-fraud" in [d["name"] for d in listed["environments"]["staging"]]  # type: ignore[index]
    assert run("split", "-p", project, "cli-fraud", "--canary", "3", "--percent", "10")["traffic"][  # type: ignore[index]
        "canary"] == {"version": 3, "percent": 10.0}
    assert run("split", "-p", project, "cli-fraud", "--clear")["traffic"] == {"canary": None, "shadow": None}  # type: ignore[index]
    assert run("set-version", "-p", project, "cli-fraud", "1")["version"] == 1  # type: ignore[index]
    assert run("rollback", "-p", project, "cli-fraud")["version"] == 2  # type: ignore[index]
    assert run("scale", "-p", project, "cli-fraud", "4")["replicas"] == 4  # type: ignore[index]
    assert run("show", "-p", project, "cli-fraud")["replica_reports"] == []  # type: ignore[index]
    assert run("envs", "protect", "-p", project, "staging") == {"name": "staging", "protected": True}
    assert {"name": "staging", "protected": True} in run("envs", "list", "-p", project)  # type: ignore[operator]
    run("delete", "-p", project, "cli-fraud")
    assert "cli-fraud" not in [d["name"] for d in run("list", "-p", project)["deployments"]]  # type: ignore[index]
