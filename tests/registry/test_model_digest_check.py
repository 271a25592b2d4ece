"""A model version must point at something its project stored (docs/registry.md): the registry
asks the artifact store (``digest_held`` over NATS) before it appends. Own stack: a test stops the
artifacts service."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from cairn.cli.main import cli

from model_helpers import push_model_folder
from platform_harness import Platform, stream_last_seq


@pytest.fixture(scope="module")
def http(platform: Platform) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=f"{platform.gateway}/api/v1/registry", headers=platform.headers, timeout=60) as c:
        yield c


def _made(http: httpx.Client, project: str) -> str:
    """A project with a run and a model ``m``; returns the run id."""
    assert http.post("/projects", json={"name": project}).status_code == 201
    run = http.post(f"/projects/{project}/runs", json={})
    assert run.status_code == 201, run.text
    assert http.post(f"/projects/{project}/models", json={"name": "m"}).status_code == 201
    return run.json()["id"]


def _versions(http: httpx.Client, project: str) -> list[dict]:
    resp = http.get(f"/projects/{project}/models/m/versions")
    assert resp.status_code == 200, resp.text
    return resp.json()["versions"]


def _refused(http: httpx.Client, platform: Platform, project: str, run_id: str, digest: str) -> None:
    before = stream_last_seq(platform)
    resp = http.post(f"/projects/{project}/models/m/versions", json={"run_id": run_id, "artifact_digest": digest})
    assert resp.status_code == 422, resp.text
    error = resp.json()["error"]
    assert error["code"] == "invalid_input"
    assert error["message"] == (
        f"digest {digest} is not stored in project {project}: push the model folder first "
        f"(cairn artifacts log DIR -p {project} --run RUN --kind model, or run.log_model) "
        "and register the manifest digest it prints")
    assert stream_last_seq(platform) == before
    assert _versions(http, project) == []


def test_a_digest_stored_nowhere_is_422_and_creates_nothing(http: httpx.Client, platform: Platform) -> None:
    run_id = _made(http, "dg-none")
    _refused(http, platform, "dg-none", run_id, "0" * 64)
    alias = http.put("/projects/dg-none/models/m/aliases/production", json={"version": 1})
    assert alias.status_code == 404, alias.text  # no version, so no alias can point at nothing


def test_a_digest_only_another_project_holds_is_refused(http: httpx.Client, platform: Platform) -> None:
    _made(http, "dg-theirs")
    theirs = push_model_folder(platform.gateway, platform.headers, "dg-theirs", label="theirs")
    run_id = _made(http, "dg-mine")
    _refused(http, platform, "dg-mine", run_id, theirs)


def test_a_pushed_model_folder_is_accepted(http: httpx.Client, platform: Platform) -> None:
    run_id = _made(http, "dg-ok")
    digest = push_model_folder(platform.gateway, platform.headers, "dg-ok")
    resp = http.post("/projects/dg-ok/models/m/versions", json={"run_id": run_id, "artifact_digest": digest})
    assert resp.status_code == 201, resp.text
    assert (resp.json()["version"], resp.json()["artifact_digest"]) == (1, digest)
    alias = http.put("/projects/dg-ok/models/m/aliases/production", json={"version": 1})
    assert alias.status_code == 200, alias.text


def test_the_digest_cairn_artifacts_log_prints_is_accepted(http: httpx.Client, platform: Platform,
                                                           tmp_path: Path) -> None:
    """What the refusal tells the user to do works: log the folder, register the digest printed."""
    run_id = _made(http, "dg-cli")
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "weights.bin").write_bytes(b"cli weights")
    result = CliRunner(env={"CAIRN_TOKEN": platform.token}).invoke(cli, [
        "--url", platform.gateway, "--json", "artifacts", "log", str(tmp_path / "model"), "-p", "dg-cli",
        "--run", run_id, "--kind", "model"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    digest = json.loads(result.output)["digest"]
    resp = http.post("/projects/dg-cli/models/m/versions", json={"run_id": run_id, "artifact_digest": digest})
    assert resp.status_code == 201, resp.text


def test_artifacts_down_is_503_and_creates_nothing(http: httpx.Client, platform: Platform) -> None:
    run_id = _made(http, "dg-down")
    digest = push_model_folder(platform.gateway, platform.headers, "dg-down")
    platform.kill("artifacts")
    try:
        before = stream_last_seq(platform)
        resp = http.post("/projects/dg-down/models/m/versions", json={"run_id": run_id, "artifact_digest": digest})
        assert resp.status_code == 503, resp.text
        error = resp.json()["error"]
        assert error["code"] == "unavailable"
        assert error["message"] == (f"cannot check that digest {digest} is stored in project dg-down: the artifacts "
                                    "service is not answering; nothing was registered, retry shortly")
        assert stream_last_seq(platform) == before
        assert _versions(http, "dg-down") == []
    finally:
        platform.start_service("artifacts")
        platform.wait_healthy()
    resp = http.post("/projects/dg-down/models/m/versions", json={"run_id": run_id, "artifact_digest": digest})
    assert resp.status_code == 201, resp.text
