"""``cairn.start_run`` is one request and one event for the run: the project (its creator made its
admin), the experiment and the run with its record, made by ``POST .../runs/start``; a retry with
the same Idempotency-Key is the same run."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

import cairn
from cairn.kernel.schemas import current_version
from cairn.sdk.code_snapshot import read_snapshot

from platform_harness import Platform, read_all_events

pytestmark = pytest.mark.shared_stack  # see tests/conftest.py
TAG = f"sr{os.getpid()}"


@pytest.fixture()
def user_client(platform: Platform) -> Iterator[cairn.Client]:
    """A user who is not a site admin, with the requests it sends counted on the wire."""
    with cairn.Client(platform.gateway, token=platform.token) as admin:
        token = admin.create_token(f"{TAG}-user")["token"]
    with cairn.Client(platform.gateway, token=token) as client:
        client.sent = []  # type: ignore[attr-defined]
        client._http.event_hooks["request"].append(
            lambda request: client.sent.append((request.method, request.url.path)))  # type: ignore[attr-defined]
        yield client


def test_start_run_is_one_request_and_one_event_for_the_run(user_client: cairn.Client, platform: Platform,
                                                            tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # not a git work tree: no code archive to upload
    project = f"{TAG}-new"
    with pytest.warns(UserWarning, match="not in a git work tree"):
        run = cairn.start_run(project=project, experiment="tuning", params={"lr": 0.1}, seed=3,
                              system_metrics=False, client=user_client)
    assert user_client.sent == [("POST", f"/api/v1/registry/projects/{project}/runs/start")]  # type: ignore[attr-defined]
    events = read_all_events(platform.nats_url)
    run_events = [e for e in events if (e["project"], e["aggregate"], e["aggregate_id"]) == (project, "run", run.id)]
    assert [(e["type"], e["version"]) for e in run_events] == [("run.created", current_version("run.created"))]
    record = run_events[0]["data"]["record"]
    assert record["seeds"] == {"seed": 3} and record["environment"]["python"] and record["command"]
    assert [e["type"] for e in events if e["project"] == project and e["type"].startswith("member.")] == []
    # the creator sees and administers the project at once
    assert user_client.get_run_environment(project, run.id)["seeds"] == {"seed": 3}
    assert [m["user"] for m in user_client.list_members(project)] == [f"{TAG}-user"]
    run.finish()


def test_in_a_git_work_tree_the_code_snapshot_is_in_the_one_event_and_the_archive_follows(
        user_client: cairn.Client, platform: Platform, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    for args in (["init", "-q", "-b", "main"], ["add", "train.py"], ["commit", "-q", "-m", "first"]):
        if args[0] == "add":
            (repo / "train.py").write_text("lr = 0.1\n")
        subprocess.run(["git", "-C", str(repo), "-c", "user.email=t@example.com", "-c", "user.name=t", *args],
                       check=True, capture_output=True)
    monkeypatch.chdir(repo)
    project = f"{TAG}-git"
    run = cairn.start_run(project=project, system_metrics=False, client=user_client)
    # the start, then the archive: is it missing from the project (yes, a new project), upload it
    events = read_all_events(platform.nats_url)
    run_events = [e for e in events if (e["project"], e["aggregate"], e["aggregate_id"]) == (project, "run", run.id)]
    assert [e["type"] for e in run_events] == ["run.created"]
    code = run_events[0]["data"]["record"]["code"]
    assert code["branch"] == "main" and code["dirty"] is False
    assert user_client.sent == [  # type: ignore[attr-defined]
        ("POST", f"/api/v1/registry/projects/{project}/runs/start"),
        ("POST", f"/api/v1/artifacts/projects/{project}/blobs/missing"),
        ("PUT", f"/api/v1/artifacts/projects/{project}/blobs/{code['archive_digest']}")]
    archive = user_client.artifacts.download_blob(code["archive_digest"], tmp_path / "code.tar.gz")
    assert read_snapshot(archive) == {"train.py": b"lr = 0.1\n"}
    run.finish()


def test_start_run_again_with_the_same_key_is_the_same_run(user_client: cairn.Client) -> None:
    project = f"{TAG}-again"
    first = user_client.start_new_run(project, experiment="e", name="once", idempotency_key=f"{TAG}-k1")
    again = user_client.start_new_run(project, experiment="e", name="once", idempotency_key=f"{TAG}-k1")
    assert again["id"] == first["id"]
    assert [r["id"] for r in user_client.search_runs(project)["runs"]] == [first["id"]]
    other = user_client.start_new_run(project, experiment="e", name="twice")
    assert other["id"] != first["id"] and other["experiment_id"] == first["experiment_id"]


def test_start_run_needs_the_editor_role_in_a_project_that_exists(platform: Platform,
                                                                  user_client: cairn.Client) -> None:
    admin = httpx.Client(base_url=f"{platform.gateway}/api/v1", headers=platform.headers, timeout=30)
    project = f"{TAG}-theirs"
    assert admin.post("/registry/projects", json={"name": project}).status_code == 201
    with pytest.raises(cairn.ApiError) as refused:
        user_client.start_new_run(project)
    assert refused.value.status == 404 and "not a member" in refused.value.message
    admin.post(f"/projects/{project}/members", json={"user": f"{TAG}-user", "role": "viewer"}).raise_for_status()
    with pytest.raises(cairn.ApiError) as viewer:
        user_client.start_new_run(project)
    assert viewer.value.status == 403
    assert admin.get(f"/registry/projects/{project}/runs").json()["runs"] == []
