"""The pipelines service's API on the real platform (nats-server and every service process), through
the gateway. The engine is not part of this module: pipelines here are approval steps only, and
where a step must be waiting for approval the test plays the engine's one move (it appends the
``approval.requested`` that ``domain.next_actions`` says is next, as the engine would)."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from itertools import count
from typing import Any

import httpx
import pytest

from model_helpers import model_digest, push_model
from platform_harness import Platform

DIGEST = model_digest()
_names = count()
APPROVAL = """\
name: release
params: {threshold: 0.5}
steps:
  - id: approve
    inputs: {model: "model:fraud@production"}
    approval: {role: admin, message: ship it?}
"""
SOLO = """\
name: solo
concurrency: {policy}
steps:
  - {{id: approve, approval: {{role: editor}}}}
"""


@pytest.fixture(scope="module")
def admin(platform: Platform) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=f"{platform.gateway}/api/v1", headers=platform.headers, timeout=30) as client:
        yield client


@pytest.fixture
def project(admin: httpx.Client) -> str:
    """A project of the test's own (its runs queue behind nobody else's) with model ``fraud``
    whose ``production`` alias is version 1."""
    name = f"pl{os.getpid()}-{next(_names)}"
    admin.post("/registry/projects", json={"name": name}).raise_for_status()
    run_id = admin.post(f"/registry/projects/{name}/runs", json={}).json()["id"]
    admin.post(f"/registry/projects/{name}/models", json={"name": "fraud"}).raise_for_status()
    push_model(admin, name)
    admin.post(f"/registry/projects/{name}/models/fraud/versions",
               json={"run_id": run_id, "artifact_digest": DIGEST}).raise_for_status()
    admin.put(f"/registry/projects/{name}/models/fraud/aliases/production", json={"version": 1}).raise_for_status()
    return name


def member(admin: httpx.Client, project: str, role: str) -> httpx.Client:
    user = f"pl-{role}-{next(_names)}"
    token = admin.post("/tokens", json={"user": user}).json()["token"]
    admin.post(f"/projects/{project}/members", json={"user": user, "role": role}).raise_for_status()
    return httpx.Client(base_url=str(admin.base_url), headers={"Authorization": f"Bearer {token}"}, timeout=30)


def start(client: httpx.Client, project: str, text: str = APPROVAL, **body: Any) -> httpx.Response:
    return client.post(f"/pipelines/projects/{project}/runs", json={"pipeline": text, **body})


def started(client: httpx.Client, project: str, text: str = APPROVAL, **body: Any) -> dict[str, Any]:
    """Start a run, waiting for the model facts to reach the pipelines service's projection."""
    deadline = time.monotonic() + 20
    while True:
        resp = start(client, project, text, **body)
        if resp.status_code != 422 or time.monotonic() > deadline or "cannot be resolved" not in resp.text:
            assert resp.status_code in (200, 201), resp.text
            return resp.json()
        time.sleep(0.1)


def waiting(admin: httpx.Client, project: str, run_id: str) -> dict[str, Any]:
    """Wait for the engine to ask for the run's approval (its only step), and return the view."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        view = admin.get(f"/pipelines/projects/{project}/runs/{run_id}").json()
        if view["steps"][0]["state"] == "waiting_approval":
            return view
        time.sleep(0.05)
    raise AssertionError(f"step never showed waiting_approval: {view}")


def test_start_show_list_and_draw(admin: httpx.Client, project: str) -> None:
    run = started(admin, project, params={"threshold": 0.7})
    assert run["pipeline"] == "release" and run["status"] == "running"
    assert run["trigger"]["kind"] == "manual" and run["trigger"]["actor"]
    assert run["params"] == {"threshold": 0.7}
    assert run["inputs"] == {"model:fraud@production": DIGEST}  # resolved at the start
    assert [(s["id"], s["kind"]) for s in run["steps"]] == [("approve", "approval")]
    shown = waiting(admin, project, run["id"])  # the engine asked for the approval
    assert {k: v for k, v in shown.items() if k not in ("steps", "seq")} == \
        {k: v for k, v in run.items() if k not in ("steps", "seq")}
    listed = admin.get(f"/pipelines/projects/{project}/runs", params={"pipeline": "release"}).json()["runs"]
    assert run["id"] in [r["id"] for r in listed]
    assert admin.get(f"/pipelines/projects/{project}/runs", params={"status": "failed"}).json()["runs"] == []
    mermaid = admin.get(f"/pipelines/projects/{project}/runs/{run['id']}", params={"format": "mermaid"})
    assert mermaid.status_code == 200 and mermaid.text.startswith("flowchart TD")
    assert "approve" in mermaid.text and "waiting_approval" in mermaid.text
    text = admin.get(f"/pipelines/projects/{project}/runs/{run['id']}", params={"format": "text"}).text
    assert "pipeline release" in text
    events = admin.get(f"/pipelines/projects/{project}/runs/{run['id']}/events").json()["events"]
    assert [e["type"] for e in events] == ["pipeline_run.started", "approval.requested"]
    assert events[0]["data"]["code"] is None and events[0]["data"]["status"] is None


def test_code_record_is_kept_and_its_digest_caches(admin: httpx.Client, project: str) -> None:
    code = {"archive_digest": "a" * 64, "tree_digest": "b" * 64, "commit": "c" * 40, "branch": "main"}
    run = started(admin, project, code=code)
    assert run["code"] == {**code, "repo": None} and run["code_digest"] == "b" * 64
    bad = start(admin, project, code={"commit": "c" * 40})
    assert bad.status_code == 422 and "archive_digest or tree_digest" in bad.json()["error"]["message"]


def test_bad_requests_change_nothing(admin: httpx.Client, project: str) -> None:
    before = admin.get(f"/pipelines/projects/{project}/runs").json()["runs"]
    bad_yaml = start(admin, project, "name: x\nsteps:\n  - id: a\n    approval: {role: boss}\n")
    assert bad_yaml.status_code == 422
    problems = bad_yaml.json()["error"]["details"]["problems"]
    assert problems and problems[0]["line"] == 4 and "boss" in problems[0]["message"]
    unknown_param = start(admin, project, params={"epochs": 3})
    assert unknown_param.status_code == 422 and "'epochs'" in unknown_param.json()["error"]["message"]
    unknown_ref = start(admin, project, APPROVAL.replace("model:fraud@production", "model:churn@production"))
    assert unknown_ref.status_code == 422 and "model:churn@production" in unknown_ref.json()["error"]["message"]
    neither = admin.post(f"/pipelines/projects/{project}/runs", json={"params": {}})
    assert neither.status_code == 422 and "either pipeline" in neither.json()["error"]["message"]
    missing = admin.get(f"/pipelines/projects/{project}/runs/{'0' * 32}")
    assert missing.status_code == 404 and "0" * 32 in missing.json()["error"]["message"]
    bad_status = admin.get(f"/pipelines/projects/{project}/runs", params={"status": "done"})
    assert bad_status.status_code == 422 and "running" in bad_status.json()["error"]["message"]
    assert admin.get(f"/pipelines/projects/{project}/runs").json()["runs"] == before


def test_cancel_appends_a_request_once(admin: httpx.Client, project: str) -> None:
    run = started(admin, project)
    waiting(admin, project, run["id"])
    editor = member(admin, project, "editor")
    viewer = member(admin, project, "viewer")
    url = f"/pipelines/projects/{project}/runs/{run['id']}/cancel"
    assert viewer.post(url, json={"reason": "no"}).status_code == 403
    cancelled = editor.post(url, json={"reason": "wrong data"})
    assert cancelled.status_code == 200 and cancelled.json()["cancel_requested"] is True
    again = editor.post(url, json={"reason": "again"})  # a no-op; or, once the engine finished the run, a 409
    assert again.status_code == 200 or (again.status_code == 409 and "finished" in again.text), again.text
    deadline = time.monotonic() + 20
    while admin.get(f"/pipelines/projects/{project}/runs/{run['id']}").json()["status"] != "cancelled":
        assert time.monotonic() < deadline, "the engine never finished the cancelled run"
        time.sleep(0.05)
    events = admin.get(f"/pipelines/projects/{project}/runs/{run['id']}/events").json()["events"]
    assert [(e["type"], e["data"].get("reason")) for e in events] == [
        ("pipeline_run.started", None), ("approval.requested", None), ("pipeline_run.cancel_requested", "wrong data"),
        ("step.skipped", "cancelled"), ("pipeline_run.finished", None)]
    assert admin.post(f"/pipelines/projects/{project}/runs/{'0' * 32}/cancel", json={}).status_code == 404


def test_approval_roles(platform: Platform, admin: httpx.Client, project: str) -> None:
    run = started(admin, project)
    base = f"/pipelines/projects/{project}/runs/{run['id']}/steps/approve"
    waiting(admin, project, run["id"])
    viewer, editor = member(admin, project, "viewer"), member(admin, project, "editor")
    for client, role in ((viewer, "viewer"), (editor, "editor")):
        refused = client.post(f"{base}/approve", json={"comment": "lgtm"})
        assert refused.status_code == 403, refused.text
        message = refused.json()["error"]["message"]
        assert "admin" in message and role in message  # both roles named
        assert client.post(f"{base}/reject", json={}).status_code == 403
    assert admin.post(f"/pipelines/projects/{project}/runs/{run['id']}/steps/nope/approve").status_code == 404
    granted = admin.post(f"{base}/approve", json={"comment": "ship"})
    assert granted.status_code == 200, granted.text
    step = granted.json()["steps"][0]
    assert step["state"] == "succeeded" and step["decided_by"]["role"] == "admin" and step["message"] == "ship"
    assert admin.post(f"{base}/reject", json={}).status_code == 409  # decided already


def test_concurrency_skip_and_queue(admin: httpx.Client, project: str) -> None:
    first = started(admin, project, SOLO.format(policy="skip"))
    skipped = start(admin, project, SOLO.format(policy="skip"))
    assert skipped.status_code == 200 and skipped.json()["skipped"] is True
    assert first["id"] in skipped.json()["reason"]
    assert [r["id"] for r in admin.get(f"/pipelines/projects/{project}/runs",
                                       params={"pipeline": "solo"}).json()["runs"]] == [first["id"]]
    queued = started(admin, project, SOLO.format(policy="queue"))
    assert queued["trigger"]["queued_behind"] == [first["id"]]
    key = {"Idempotency-Key": f"solo-{os.getpid()}"}
    newest = admin.post(f"/pipelines/projects/{project}/runs", headers=key,
                        json={"pipeline": SOLO.format(policy="cancel-older")}).json()
    assert "queued_behind" not in newest["trigger"]
    for older in (first, queued):
        view = admin.get(f"/pipelines/projects/{project}/runs/{older['id']}").json()
        assert view["cancel_requested"] is True, view
    again = admin.post(f"/pipelines/projects/{project}/runs", headers=key,
                       json={"pipeline": SOLO.format(policy="cancel-older")})
    assert again.status_code == 201 and again.json()["id"] == newest["id"]  # the retry cancels nothing
    assert admin.get(f"/pipelines/projects/{project}/runs/{newest['id']}").json()["cancel_requested"] is False


def test_logs_of_a_run_without_jobs(admin: httpx.Client, project: str) -> None:
    run = started(admin, project)
    logs = admin.get(f"/pipelines/projects/{project}/runs/{run['id']}/logs")
    assert logs.status_code == 200 and logs.text == ""
    not_job = admin.get(f"/pipelines/projects/{project}/runs/{run['id']}/logs", params={"step": "approve"})
    assert not_job.status_code == 422 and "only job steps" in not_job.json()["error"]["message"]


def test_rebuild_gives_the_same_view(admin: httpx.Client, project: str) -> None:
    run = started(admin, project)
    before = waiting(admin, project, run["id"])
    listed = admin.get(f"/pipelines/projects/{project}/runs").json()
    rebuilt = admin.post("/pipelines/admin/rebuild")
    assert rebuilt.status_code == 200, rebuilt.text
    assert admin.get(f"/pipelines/projects/{project}/runs/{run['id']}").json() == before
    assert admin.get(f"/pipelines/projects/{project}/runs").json() == listed


def test_a_registered_definition_starts_by_name_with_its_params(admin: httpx.Client, project: str) -> None:
    missing = admin.post(f"/pipelines/projects/{project}/runs", json={"definition": "release"})
    assert missing.status_code == 404 and "no pipeline 'release' is registered" in missing.json()["error"]["message"]
    registered = admin.post(f"/pipelines/projects/{project}/definitions",
                            json={"definition": APPROVAL, "params": {"threshold": 0.8}})
    assert registered.status_code == 201, registered.text
    run = admin.post(f"/pipelines/projects/{project}/runs", json={"definition": "release"})
    assert run.status_code == 201 and run.json()["params"] == {"threshold": 0.8}  # the registered override
    admin.post(f"/pipelines/projects/{project}/runs/{run.json()['id']}/cancel", json={}).raise_for_status()
    mine = admin.post(f"/pipelines/projects/{project}/runs", json={"definition": "release", "params": {"threshold": 0.9}})
    assert mine.status_code == 201 and mine.json()["params"] == {"threshold": 0.9}  # the request's wins
    admin.post(f"/pipelines/projects/{project}/runs/{mine.json()['id']}/cancel", json={}).raise_for_status()
    triggers_only = APPROVAL.replace("steps:", "on: {manual: false, schedule: {cron: '@daily'}}\nsteps:")
    assert admin.post(f"/pipelines/projects/{project}/definitions", json={"definition": triggers_only}).status_code == 201
    refused = admin.post(f"/pipelines/projects/{project}/runs", json={"definition": "release"})
    assert refused.status_code == 409 and "on.manual: false" in refused.json()["error"]["message"]
