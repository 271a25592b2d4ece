"""Pipeline triggers on the real platform: a real bare git repository whose ``post-receive`` hook
posts GitHub- or GitLab-format push events to the gateway's open hook route; event triggers from a
dataset version; a schedule with the service's clock replaced; commit statuses to a local receiver.

The engine is not part of this module: the tests check that runs are *started* with the right
trigger and code (the steps are approvals, which need no agent)."""

from __future__ import annotations

import hashlib
import hmac
import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from code_host import POST_RECEIVE, StatusReceiver

from cairn.sdk.client import Client

from platform_harness import Platform, running

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scheduler"))
from agent_pool import wait_until as poll_until  # noqa: E402 - one polling loop for the tests

SECRET = "hook-secret-0123456789"
GIT = ["git", "-c", "user.name=dev", "-c", "user.email=dev@cairn.invalid", "-c", "init.defaultBranch=main"]
PROJECT = "trig"
PIPELINE = """\
name: {name}
on:
  push: {{branches: [main], paths: ["**", "!docs/**"]}}
steps:
  - id: approve
    approval: {{role: editor}}
"""


@pytest.fixture(scope="module")
def clock_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("clock") / "now"


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory, clock_file: Path) -> Iterator[Platform]:
    env = {"CAIRN_PIPELINES_CLOCK_FILE": str(clock_file), "CAIRN_PIPELINES_TICK_S": "0.2",
           "CAIRN_PIPELINES_ALLOW_LOCAL_REPOS": "true"}
    with running(Platform(tmp_path_factory.mktemp("platform"), service_env={"pipelines": env})) as plat:
        yield plat


@pytest.fixture(scope="module")
def admin(platform: Platform) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=f"{platform.gateway}/api/v1", headers=platform.headers, timeout=60) as client:
        client.post("/registry/projects", json={"name": PROJECT}).raise_for_status()
        yield client


@pytest.fixture(scope="module")
def receiver() -> StatusReceiver:
    return StatusReceiver()


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory, platform: Platform) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("git")
    bare, work = root / "ml.git", root / "work"
    git(root, "init", "--bare", "-q", str(bare))
    git(root, "clone", "-q", str(bare), str(work))
    hook = bare / "hooks" / "post-receive"
    hook.write_text(POST_RECEIVE.format(python=sys.executable, conf=str(root / "hook.json")))
    hook.chmod(0o755)
    return {"root": root, "bare": bare, "work": work, "conf": root / "hook.json"}


def git(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*GIT, *args], cwd=cwd, check=True, capture_output=True, text=True)


def configure(repo: dict[str, Path], platform: Platform, *, fmt: str = "github", secret: str = SECRET,
              full_name: str = "acme/ml") -> None:
    repo["conf"].write_text(json.dumps({"url": f"{platform.gateway}/api/v1/pipelines/hooks/git", "format": fmt,
                                        "secret": secret, "full_name": full_name,
                                        "clone_url": str(repo["bare"])}))


def push(repo: dict[str, Path], files: dict[str, str], *, branch: str = "main",
         message: str = "change") -> tuple[str, int, dict[str, Any]]:
    """Commit ``files`` (none: an empty commit) and push; (commit, hook's status, hook's answer)."""
    work = repo["work"]
    for name, text in files.items():
        (work / name).parent.mkdir(parents=True, exist_ok=True)
        (work / name).write_text(text)
    git(work, "add", "-A")
    git(work, "commit", "-q", "--allow-empty", "-m", message)
    sha = git(work, "rev-parse", "HEAD").stdout.strip()
    out = git(work, "push", "-q", "origin", f"HEAD:refs/heads/{branch}")
    if branch != "main":  # the work tree stays on main
        git(work, "reset", "-q", "--hard", "HEAD~1")
    line = next(x for x in (out.stderr + out.stdout).splitlines() if "HOOK" in x)
    _, status, body = line.split("HOOK", 1)[1].split(" ", 2)
    return sha, int(status), json.loads(body)


def register(admin: httpx.Client, text: str, **body: Any) -> dict[str, Any]:
    resp = admin.post(f"/pipelines/projects/{PROJECT}/definitions", json={"definition": text, **body})
    assert resp.status_code == 201, resp.text
    return resp.json()


def runs(admin: httpx.Client, pipeline: str) -> list[dict[str, Any]]:
    resp = admin.get(f"/pipelines/projects/{PROJECT}/runs", params={"pipeline": pipeline})
    resp.raise_for_status()
    return resp.json()["runs"]


def run_view(admin: httpx.Client, run_id: str) -> dict[str, Any]:
    resp = admin.get(f"/pipelines/projects/{PROJECT}/runs/{run_id}")
    resp.raise_for_status()
    return resp.json()


def wait_for(what: str, check: Callable[[], Any], timeout: float = 30.0) -> Any:
    return poll_until(check, timeout, what)


@pytest.fixture(scope="module")
def ci(admin: httpx.Client, repo: dict[str, Path], platform: Platform, receiver: StatusReceiver) -> dict[str, Any]:
    """Pipeline ``ci`` registered for acme/ml with a GitHub hook and a status target."""
    text = PIPELINE.format(name="ci")
    shown = register(admin, text, repo={"full_name": "acme/ml", "clone_url": str(repo["bare"])},
                     hook={"kind": "github", "secret": SECRET},
                     status={"url": receiver.url, "token": "status-token-1"})
    configure(repo, platform)
    return {"text": text, "shown": shown}


def test_a_definition_shows_whether_secrets_are_set_and_bad_files_are_422(admin: httpx.Client,
                                                                        ci: dict[str, Any]) -> None:
    shown = admin.get(f"/pipelines/projects/{PROJECT}/definitions/ci").json()
    assert shown["hook"] == {"kind": "github", "secret_set": True}
    assert shown["status"]["token_set"] is True and SECRET not in json.dumps(shown)
    assert "status-token-1" not in json.dumps(admin.get(f"/pipelines/projects/{PROJECT}/definitions").json())
    bad = admin.post(f"/pipelines/projects/{PROJECT}/definitions",
                     json={"definition": "name: x\non: {push: {branch: [main]}}\nsteps: []\n"})
    assert bad.status_code == 422
    assert [p["line"] for p in bad.json()["error"]["details"]["problems"]] == [2, 3]


def test_a_push_starts_one_run_of_the_pushed_commit_with_its_tree_archive(
        admin: httpx.Client, repo: dict[str, Path], ci: dict[str, Any], platform: Platform) -> None:
    sha, status, answer = push(repo, {"cairn/pipeline.yaml": ci["text"], "train.py": "print('v1')\n"})
    assert status == 202, answer
    [started] = answer["started"]
    view = run_view(admin, started["run"])
    assert view["trigger"] == {"kind": "push", "commit": sha, "branch": "main", "repo": "acme/ml", "pusher": "dev"}
    assert view["code"]["commit"] == sha and view["code"]["tree_digest"] == started["code"]
    blob = admin.head(f"/artifacts/blobs/{started['code']}")
    assert blob.status_code == 200  # the project holds the archive: its jobs may read it
    # the same delivery again (a redelivery) starts nothing new
    body = json.dumps({"ref": "refs/heads/main", "before": "0" * 40, "after": sha, "head_commit": {"id": sha},
                       "repository": {"full_name": "acme/ml", "clone_url": str(repo["bare"])},
                       "pusher": {"name": "dev"}, "commits": [{"modified": ["train.py"]}]}).encode()
    again = httpx.post(f"{platform.gateway}/api/v1/pipelines/hooks/git", content=body, timeout=60,
                       headers={"X-GitHub-Event": "push", "X-Hub-Signature-256": sign(body)})
    assert again.status_code == 202 and again.json()["started"][0]["run"] == started["run"], again.text
    assert len(runs(admin, "ci")) == 1
    # another tree, then a third commit back to the first tree: same tree, same code digest
    _, status2, answer2 = push(repo, {"train.py": "print('v2')\n"})
    assert status2 == 202 and answer2["started"][0]["code"] != started["code"]
    sha3, status3, answer3 = push(repo, {"train.py": "print('v1')\n"}, message="back to v1")
    assert status3 == 202 and sha3 != sha
    assert answer3["started"][0]["code"] == started["code"]
    assert len(runs(admin, "ci")) == 3


def sign(body: bytes, secret: str = SECRET) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def test_a_bad_signature_is_401_and_starts_nothing(admin: httpx.Client, repo: dict[str, Path], ci: dict[str, Any],
                                                  platform: Platform) -> None:
    before = len(runs(admin, "ci"))
    configure(repo, platform, secret="not-the-secret-at-all")
    try:
        _, status, answer = push(repo, {"train.py": "print('forged')\n"})
    finally:
        configure(repo, platform)
    assert status == 401 and "secret" in answer["error"]["message"]
    assert len(runs(admin, "ci")) == before


def test_a_signed_ping_is_answered_and_starts_nothing(admin: httpx.Client, ci: dict[str, Any],
                                                     platform: Platform) -> None:
    before = len(runs(admin, "ci"))
    body = json.dumps({"zen": "Keep it logically awesome.", "hook_id": 7,
                       "repository": {"full_name": "acme/ml"}}).encode()
    url = f"{platform.gateway}/api/v1/pipelines/hooks/git"
    resp = httpx.post(url, content=body, timeout=30, headers={"X-GitHub-Event": "ping", "X-Hub-Signature-256": sign(body)})
    assert resp.status_code == 200 and resp.json() == {"ping": True, "pipelines": [f"{PROJECT}/ci"]}, resp.text
    unsigned = httpx.post(url, content=body, timeout=30, headers={"X-GitHub-Event": "ping"})
    assert unsigned.status_code == 401
    assert httpx.post(url, content=b"not json", timeout=30, headers={"X-GitHub-Event": "push"}).status_code == 400
    assert len(runs(admin, "ci")) == before


def test_filtered_pushes_start_nothing_and_say_why(admin: httpx.Client, repo: dict[str, Path],
                                                   ci: dict[str, Any]) -> None:
    before = len(runs(admin, "ci"))
    _, status, answer = push(repo, {"train.py": "print('dev')\n"}, branch="dev")
    assert status == 200 and "branch dev" in answer["skipped"][0]["reason"]
    _, status, answer = push(repo, {"docs/index.md": "# docs\n"})
    assert status == 200 and "docs/index.md" in answer["skipped"][0]["reason"]
    assert len(runs(admin, "ci")) == before


def test_a_gitlab_push_with_its_token_starts_a_run(admin: httpx.Client, repo: dict[str, Path],
                                                   platform: Platform) -> None:
    text = PIPELINE.format(name="gl")
    register(admin, text, path="cairn/gl.yaml", repo={"full_name": "group/ml", "clone_url": str(repo["bare"])},
             hook={"kind": "gitlab", "secret": "gitlab-token-0123456789"})
    configure(repo, platform, fmt="gitlab", secret="gitlab-token-0123456789", full_name="group/ml")
    try:
        sha, status, answer = push(repo, {"cairn/gl.yaml": text, "train.py": "print('gl')\n"})
        assert status == 202, answer
        assert run_view(admin, answer["started"][0]["run"])["trigger"]["commit"] == sha
        configure(repo, platform, fmt="gitlab", secret="wrong-token-0123456789", full_name="group/ml")
        _, status, _ = push(repo, {"train.py": "print('gl2')\n"})
        assert status == 401
        # a deleted definition is started by nothing, even with the right token
        assert admin.delete(f"/pipelines/projects/{PROJECT}/definitions/gl").status_code == 204
        assert admin.get(f"/pipelines/projects/{PROJECT}/definitions/gl").status_code == 404
        configure(repo, platform, fmt="gitlab", secret="gitlab-token-0123456789", full_name="group/ml")
        _, status, _ = push(repo, {"train.py": "print('gl3')\n"})
        assert status == 401 and len(runs(admin, "gl")) == 1
    finally:
        configure(repo, platform)


def test_commit_statuses_reach_the_code_host(admin: httpx.Client, receiver: StatusReceiver, ci: dict[str, Any]) -> None:
    [first, *_] = sorted(runs(admin, "ci"), key=lambda r: r["seq"])
    sha = run_view(admin, first["id"])["trigger"]["commit"]
    call = wait_for("a pending status", lambda: next((c for c in receiver.calls if sha in c["path"]), None))
    assert call["path"] == f"/repos/acme/ml/statuses/{sha}"
    assert call["body"]["state"] == "pending" and call["body"]["context"] == "cairn/ci"
    assert call["headers"]["Authorization"] == "Bearer status-token-1"


def test_a_finished_run_reports_its_final_state(admin: httpx.Client, platform: Platform, receiver: StatusReceiver,
                                                ci: dict[str, Any]) -> None:
    [*_, last] = sorted(runs(admin, "ci"), key=lambda r: r["seq"])
    sha = run_view(admin, last["id"])["trigger"]["commit"]
    wait_for("its pending status", lambda: any(sha in c["path"] for c in receiver.calls))
    admin.post(f"/pipelines/projects/{PROJECT}/runs/{last['id']}/cancel", json={"reason": "superseded"}
               ).raise_for_status()
    wait_for("the engine to finish the cancelled run", lambda: run_view(admin, last["id"])["status"] == "cancelled")
    call = wait_for("the final status", lambda: next((c for c in receiver.calls if sha in c["path"]
                                                      and c["body"]["state"] != "pending"), None))
    assert call["body"]["state"] == "error" and "superseded" in call["body"]["description"]
    assert [c["body"]["state"] for c in receiver.calls if sha in c["path"]] == ["pending", "error"]


def test_an_event_trigger_starts_exactly_one_run_per_event(admin: httpx.Client, platform: Platform,
                                                            tmp_path: Path) -> None:
    register(admin, "name: ondata\non:\n  event: {type: dataset.version_created, where: {data.name: fraud}}\n"
                    "steps:\n  - {id: approve, approval: {role: editor}}\n")
    client = Client(f"{platform.gateway}", platform.token)
    data = tmp_path / "data"
    data.mkdir()
    (data / "a.csv").write_text("x\n1\n")
    client.artifacts.push_dataset(PROJECT, "fraud", data)
    (data / "other.csv").write_text("y\n2\n")
    client.artifacts.push_dataset(PROJECT, "spam", data)  # not selected by the filter
    [run] = wait_for("the event-triggered run", lambda: runs(admin, "ondata"))
    trigger = run_view(admin, run["id"])["trigger"]
    assert trigger["kind"] == "event" and trigger["type"] == "dataset.version_created"
    assert trigger["subject"] == f"cairn.evt.{PROJECT}.dataset.fraud"
    platform.restart("pipelines")  # a restart owes nothing more for the same event
    platform.wait_healthy()
    (data / "b.csv").write_text("x\n2\n")
    client.artifacts.push_dataset(PROJECT, "fraud", data)
    wait_for("the second event's run", lambda: len(runs(admin, "ondata")) == 2)
    assert len(runs(admin, "ondata")) == 2


def test_a_schedule_fires_once_for_the_latest_due_slot(admin: httpx.Client, clock_file: Path) -> None:
    shown = register(admin, "name: nightly\non:\n  schedule: {cron: \"0 3 * * *\", tz: UTC}\n"
                            "steps:\n  - {id: approve, approval: {role: editor}}\n")
    registered = datetime.fromisoformat(shown["registered_at"].replace("Z", "+00:00"))
    later = registered + timedelta(days=3)  # three slots missed: one run, for the latest
    clock_file.write_text(str(later.timestamp()))
    [run] = wait_for("the scheduled run", lambda: runs(admin, "nightly"))
    trigger = run_view(admin, run["id"])["trigger"]
    expected = later.replace(hour=3, minute=0, second=0, microsecond=0)
    expected = expected if expected <= later else expected - timedelta(days=1)
    assert trigger == {"kind": "schedule", "cron": "0 3 * * *", "tz": "UTC", "at": expected.astimezone(UTC).isoformat()}
    clock_file.write_text(str((expected + timedelta(days=1)).timestamp()))
    wait_for("the next day's run", lambda: len(runs(admin, "nightly")) == 2)
    assert [r["trigger_kind"] for r in runs(admin, "nightly")] == ["schedule", "schedule"]
