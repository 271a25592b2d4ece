"""Issue 21 end to end, on one platform of this module's own with a real agent: pushes to a local
bare repository whose ``post-receive`` hook posts signed GitHub pushes to the gateway start the
pipeline in ``e2e_repo/`` (prepare -> train -> evaluate -> gate -> register -> review -> promote
-> deploy).

The tests run in file order and build on each other, as the issue's story does:

1. the first push runs everything (the scheduler is SIGKILLed and restarted while its prepare
   job runs: every job is submitted once), the alias and the deployment move to its version;
2. a worse model fails the gate (the event has the numbers), nothing after it runs;
3. a better model waits for review: a viewer is refused, an admin approves through the CLI, the
   alias and deployment move; the monitor's error-rate rule fires for real on samples posted as a
   replica posts them, and the engine rolls the deployment and the alias back;
4. the first commit run again by hand is a cache hit for every step and runs no job;
5. a push with a bad signature is a 401 and starts nothing;
6. lineage links the commit to the pipeline run, its runs, the model version, alias and deployment.

The deployment must exist before the first deploy step, and a deployment needs a model version,
so the project starts with version 1 of ``fraud`` registered by hand (the model that served before
the pipeline): the pipeline's versions are 2 (first push) and 3 (third push).

Every wait polls with a deadline; no fixed sleeps."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner, Result
from code_host import POST_RECEIVE, StatusReceiver

from cairn.cli.main import cli
from cairn.sdk.client import Client
from cairn.serving.sink import InferenceSample

from model_helpers import push_model
from platform_harness import Platform, read_all_events, running

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scheduler"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "monitor_service"))
from agent_pool import Agents  # noqa: E402 - the scheduler tests' real agent processes
from agent_pool import wait_until as poll_until  # noqa: E402

from monitor_helpers import send  # noqa: E402 - samples posted to the relay as a replica posts them

PROJECT = "e2e"
PIPELINE = "fraud-e2e"
REPO = "acme/fraud"
SECRET = "e2e-hook-secret-0123456789"
STEPS = ["prepare", "train", "evaluate", "gate", "register", "review", "promote", "deploy"]
JOB_STEPS = ["prepare", "train", "evaluate"]
SOURCE = Path(__file__).resolve().parent / "e2e_repo"
GIT = ["git", "-c", "user.name=dev", "-c", "user.email=dev@cairn.invalid", "-c", "init.defaultBranch=main"]


def wait_for(what: str, check: Callable[[], Any], timeout: float = 90.0) -> Any:
    return poll_until(check, timeout, what)


def git(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*GIT, *args], cwd=cwd, check=True, capture_output=True, text=True)


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    env = {"CAIRN_PIPELINES_ALLOW_LOCAL_REPOS": "true"}
    with running(Platform(tmp_path_factory.mktemp("platform"), extra_env={"CAIRN_PIPELINES_TICK_S": "0.2"},
                          service_env={"pipelines": env})) as plat:
        yield plat


@pytest.fixture(scope="module")
def agents(platform: Platform, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Agents]:
    pool = Agents(platform, tmp_path_factory.mktemp("agents"))
    pool.start("e2e", cpus=2)
    try:
        yield pool
    finally:
        pool.stop_all()


@pytest.fixture(scope="module")
def admin(platform: Platform) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=f"{platform.gateway}/api/v1", headers=platform.headers, timeout=60) as client:
        yield client


@pytest.fixture(scope="module")
def world(platform: Platform, admin: httpx.Client, agents: Agents,
          tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The project (model ``fraud`` v1 deployed as ``fraud``, an error-rate rule on it, a viewer),
    the repository with its hook, and the registered definition; then what the tests learn."""
    root = tmp_path_factory.mktemp("git")
    bare, work, hold = root / "fraud.git", root / "work", root / "hold"
    git(root, "init", "--bare", "-q", str(bare))
    git(root, "clone", "-q", str(bare), str(work))
    hook = bare / "hooks" / "post-receive"
    hook.write_text(POST_RECEIVE.format(python=sys.executable, conf=str(root / "hook.json")))
    hook.chmod(0o755)
    shutil.copytree(SOURCE, work, dirs_exist_ok=True)
    text = (SOURCE / "cairn" / "pipeline.yaml").read_text().replace("@HOLD@", str(hold))
    (work / "cairn" / "pipeline.yaml").write_text(text)

    admin.post("/registry/projects", json={"name": PROJECT}).raise_for_status()
    seed = admin.post(f"/registry/projects/{PROJECT}/runs", json={"name": "before-pipelines"}).json()
    admin.post(f"/registry/projects/{PROJECT}/models", json={"name": "fraud"}).raise_for_status()
    admin.post(f"/registry/projects/{PROJECT}/models/fraud/versions",
               json={"run_id": seed["id"], "artifact_digest": push_model(admin, PROJECT)}).raise_for_status()
    admin.post(f"/deployments/projects/{PROJECT}/deployments", json={
        "name": "fraud", "environment": "staging", "model": "fraud", "version": 1, "replicas": 0,
        "sample_rate": 1.0}).raise_for_status()
    # no action on the rule: rolling back is the pipeline's deploy step's job here
    admin.post(f"/monitor/projects/{PROJECT}/deployments/fraud/rules", json={
        "name": "errors-high", "metric": "error_rate", "comparison": ">", "threshold": 0.5, "window": "2s",
        "persistence": {"k": 1, "n": 1}, "cooldown_s": 0}).raise_for_status()
    sdk = Client(platform.gateway, platform.token)
    viewer = sdk.create_token("vera")["token"]
    sdk.add_member(PROJECT, "vera", "viewer")
    sdk.close()

    receiver = StatusReceiver()
    resp = admin.post(f"/pipelines/projects/{PROJECT}/definitions", json={
        "definition": text, "repo": {"full_name": REPO, "clone_url": str(bare)},
        "hook": {"kind": "github", "secret": SECRET}, "status": {"url": receiver.url, "token": "status-token"}})
    assert resp.status_code == 201, resp.text
    world = {"root": root, "work": work, "hold": hold, "viewer": viewer, "receiver": receiver, "bare": bare}
    configure(world, platform, SECRET)
    return world


def configure(world: dict[str, Any], platform: Platform, secret: str) -> None:
    (world["root"] / "hook.json").write_text(json.dumps({
        "url": f"{platform.gateway}/api/v1/pipelines/hooks/git", "format": "github", "secret": secret,
        "full_name": REPO, "clone_url": str(world["bare"])}))


def push(world: dict[str, Any], quality: str) -> tuple[str, int, dict[str, Any]]:
    """Commit quality.txt = ``quality`` and push; (commit, the hook's status, the hook's answer)."""
    work = world["work"]
    (work / "quality.txt").write_text(quality + "\n")
    git(work, "add", "-A")
    git(work, "commit", "-q", "--allow-empty", "-m", f"model quality {quality}")
    sha = git(work, "rev-parse", "HEAD").stdout.strip()
    out = git(work, "push", "-q", "origin", "HEAD:refs/heads/main")
    line = next(x for x in (out.stderr + out.stdout).splitlines() if "HOOK" in x)
    _, status, body = line.split("HOOK", 1)[1].split(" ", 2)
    return sha, int(status), json.loads(body)


def pushed_run(world: dict[str, Any], quality: str) -> tuple[str, str]:
    sha, status, answer = push(world, quality)
    assert status == 202, answer
    [started] = answer["started"]
    assert started["pipeline"] == PIPELINE
    return sha, started["run"]


def view(admin: httpx.Client, run_id: str) -> dict[str, Any]:
    resp = admin.get(f"/pipelines/projects/{PROJECT}/runs/{run_id}")
    assert resp.status_code == 200, resp.text
    return resp.json()


def steps_of(run: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["id"]: s for s in run["steps"]}


def finished(admin: httpx.Client, run_id: str) -> dict[str, Any]:
    return wait_for(f"run {run_id} to finish",
                    lambda: (v := view(admin, run_id))["status"] != "running" and v, timeout=120)


def events(admin: httpx.Client, run_id: str) -> list[dict[str, Any]]:
    return admin.get(f"/pipelines/projects/{PROJECT}/runs/{run_id}/events").json()["events"]


def jobs(admin: httpx.Client) -> list[dict[str, Any]]:
    return admin.get(f"/scheduler/projects/{PROJECT}/jobs").json()["jobs"]


def alias(admin: httpx.Client) -> int:
    return admin.get(f"/registry/projects/{PROJECT}/models/fraud/aliases/production").json()["version"]


def deployed(admin: httpx.Client) -> int:
    return admin.get(f"/deployments/projects/{PROJECT}/deployments/fraud").json()["version"]


def cairn(platform: Platform, *args: str, token: str) -> Result:
    return CliRunner(env={"CAIRN_TOKEN": token, "CAIRN_PROJECT": ""}).invoke(
        cli, ["--url", platform.gateway, *args])


def final_status(world: dict[str, Any], sha: str) -> dict[str, Any]:
    return wait_for(f"the final commit status of {sha}", lambda: next(
        (s for s in world["receiver"].statuses(sha) if s["state"] != "pending"), None))


def test_the_first_push_promotes_and_deploys_through_a_scheduler_kill(
        platform: Platform, admin: httpx.Client, world: dict[str, Any]) -> None:
    sha, run_id = pushed_run(world, "0.75")
    world.update(first_sha=sha, first_run=run_id)
    wait_for("the prepare job to run", lambda: [j for j in jobs(admin) if j["status"] == "running"])
    platform.restart("scheduler")  # SIGKILL while the prepare job runs, then a fresh process
    platform.wait_healthy()
    world["hold"].write_text("go")
    run = finished(admin, run_id)
    assert run["status"] == "succeeded", run
    assert run["trigger"]["kind"] == "push" and run["trigger"]["commit"] == sha
    steps = steps_of(run)
    assert [s["id"] for s in run["steps"]] == STEPS
    assert steps["review"]["state"] == "skipped"  # auc 0.75 < review_from: no approval asked
    assert all(steps[s]["state"] == "succeeded" for s in STEPS if s != "review")
    assert steps["evaluate"]["metrics"]["auc"] == 0.75 and steps["train"]["metrics"]["auc"] == 0.75
    assert steps["train"]["outputs"]["model"] and steps["prepare"]["outputs"]["data"]
    assert steps["register"]["outputs"]["version"] == 2 and steps["deploy"]["outputs"]["version"] == 2
    assert alias(admin) == 2 and deployed(admin) == 2
    # each job step's job was submitted exactly once, though the scheduler died under one of them
    assert sorted(j["name"] for j in jobs(admin)) == sorted(f"{PIPELINE}-{s}" for s in JOB_STEPS)
    submitted = [e for e in read_all_events(platform.nats_url)
                 if e["project"] == PROJECT and e["type"] == "job.submitted"]
    assert len(submitted) == len(JOB_STEPS)
    assert [t for t in ((e["type"], e["data"].get("step")) for e in events(admin, run_id))
            if t[1] == "prepare"] == [("step.started", "prepare"), ("step.succeeded", "prepare")]
    assert final_status(world, sha)["state"] == "success"


def test_a_worse_model_fails_the_gate_and_changes_nothing(admin: httpx.Client, world: dict[str, Any]) -> None:
    before = len(jobs(admin))
    sha, run_id = pushed_run(world, "0.70")
    run = finished(admin, run_id)
    assert run["status"] == "failed"
    steps = steps_of(run)
    assert steps["gate"]["state"] == "failed"
    assert all(steps[s]["state"] == "skipped" for s in STEPS[STEPS.index("gate") + 1:])
    [failed] = [e["data"] for e in events(admin, run_id) if e["type"] == "gate.failed"]
    champion = next(c for c in failed["comparisons"] if c["kind"] == "champion")
    assert (champion["candidate"], champion["champion"], champion["min_improvement"]) == (0.70, 0.75, 0.01)
    assert champion["passed"] is False
    condition = next(c for c in failed["comparisons"] if c["kind"] == "condition")
    assert condition["passed"] is True  # 0.70 >= min_auc: only the champion comparison fails
    assert alias(admin) == 2 and deployed(admin) == 2
    assert len(jobs(admin)) == before + len(JOB_STEPS)
    status = final_status(world, sha)
    assert status["state"] == "failure" and "gate" in status["description"]


def test_a_better_model_waits_for_an_admin_and_a_real_alert_rolls_it_back(
        platform: Platform, admin: httpx.Client, world: dict[str, Any]) -> None:
    sha, run_id = pushed_run(world, "0.90")
    wait_for("the review to wait", lambda: steps_of(view(admin, run_id))["review"]["state"] == "waiting_approval")
    assert alias(admin) == 2 and deployed(admin) == 2  # nothing moves before the decision

    refused = cairn(platform, "pipelines", "approve", run_id, "review", "-p", PROJECT, token=world["viewer"])
    assert refused.exit_code == 1 and "Traceback" not in refused.output
    assert "needs a admin" in refused.output and "(403 forbidden)" in refused.output
    assert steps_of(view(admin, run_id))["review"]["state"] == "waiting_approval"
    granted = cairn(platform, "pipelines", "approve", run_id, "review", "-p", PROJECT, "--comment",
                    "no leakage: new features", token=platform.token)
    assert granted.exit_code == 0, granted.output

    def baking() -> bool:
        deploy = steps_of(view(admin, run_id))["deploy"]
        return deploy["state"] == "running" and deployed(admin) == 3
    wait_for("the deploy step to switch the deployment to version 3 and bake", baking)
    assert alias(admin) == 3
    # the new version answers 503s: sampled requests reach the monitor as a replica's relay sends them.
    # Stamped now, they close a 2 s window within 2.5 s (grace 0.5 s); the alert comes 2.5-4 s after
    # the deploy step starts on the shared 2-core VM, well inside its 15 s bake.
    now = time.time()
    send(admin, PROJECT, "fraud", [
        InferenceSample(request_id=f"bad-{i}", project=PROJECT, model="fraud", version=3,
                        features=pd.DataFrame({"amount": [float(i)]}), prediction=np.array([0]),
                        latency_ms=4.0, status=503 if i < 8 else 200, time=now, deployment="fraud",
                        replica="replica-0") for i in range(10)])
    run = finished(admin, run_id)
    assert run["status"] == "failed"
    deploy = steps_of(run)["deploy"]
    assert deploy["state"] == "failed" and "errors-high" in deploy["message"], deploy
    assert "moved back to version 2" in deploy["message"]
    assert run["outcome"] == "failed" and "deploy" in events(admin, run_id)[-1]["data"]["failed_steps"]
    fired = [e for e in read_all_events(platform.nats_url) if e["project"] == PROJECT and e["type"] == "alert.fired"]
    assert len(fired) == 1 and fired[0]["actor"].startswith("service:monitor")  # the monitor's, not the test's
    assert fired[0]["data"]["value"] == 0.8
    assert deployed(admin) == 2 and alias(admin) == 2
    granted_by = [e for e in events(admin, run_id) if e["type"] == "approval.granted"]
    assert [e["data"]["comment"] for e in granted_by] == ["no leakage: new features"]
    assert final_status(world, sha)["state"] == "failure"


def test_the_first_commit_run_again_by_hand_is_all_cached(admin: httpx.Client, world: dict[str, Any]) -> None:
    before = len(jobs(admin))
    first = view(admin, world["first_run"])
    resp = admin.post(f"/pipelines/projects/{PROJECT}/runs", json={"definition": PIPELINE, "code": first["code"]})
    assert resp.status_code == 201, resp.text
    run = finished(admin, resp.json()["id"])
    assert run["status"] == "succeeded", run
    states = {s["id"]: s["state"] for s in run["steps"]}
    assert states == {s: ("skipped" if s == "review" else "cached") for s in STEPS}
    cached = [e["data"] for e in events(admin, run["id"]) if e["type"] == "step.cached"]
    assert {c["step"] for c in cached} == set(STEPS) - {"review"}
    assert {c["source_run"] for c in cached} == {world["first_run"]}
    assert len(jobs(admin)) == before  # no job ran
    world["rerun"] = run["id"]
    assert alias(admin) == 2 and deployed(admin) == 2


def test_a_push_with_a_bad_signature_is_401_and_starts_nothing(
        platform: Platform, admin: httpx.Client, world: dict[str, Any]) -> None:
    runs_before = admin.get(f"/pipelines/projects/{PROJECT}/runs").json()["runs"]
    jobs_before = len(jobs(admin))
    configure(world, platform, "not-the-hook-secret-at-all")
    try:
        _, status, answer = push(world, "0.99")
    finally:
        configure(world, platform, SECRET)
    assert status == 401 and "secret" in answer["error"]["message"]
    assert admin.get(f"/pipelines/projects/{PROJECT}/runs").json()["runs"] == runs_before
    assert len(jobs(admin)) == jobs_before


def lineage(admin: httpx.Client, direction: str, node: str) -> dict[str, int | None]:
    """The nodes ``direction`` of ``node`` (ref -> depth); empty while the lineage service lags."""
    resp = admin.get(f"/lineage/projects/{PROJECT}/{direction}", params={"node": node})
    return {n["ref"]: n["depth"] for n in resp.json()["nodes"]} if resp.status_code == 200 else {}


def test_lineage_links_the_commit_to_the_deployment(admin: httpx.Client, world: dict[str, Any]) -> None:
    first = view(admin, world["first_run"])
    job_runs = {f"run:{steps_of(first)[s]['run_id']}" for s in JOB_STEPS}
    train = f"run:{steps_of(first)['train']['run_id']}"
    commit = f"commit:{world['first_sha']}"
    chain = {f"pipeline_run:{world['first_run']}", *job_runs, "model:fraud@v2", "model:fraud@production",
             "deployment:fraud"}
    found = wait_for("the commit's downstream lineage", lambda: (d := lineage(admin, "downstream", commit))
                     and chain <= set(d) and d, timeout=30)
    # the commit ran both runs of its tree (the push's and the cached re-run), and only those
    assert {r for r in found if r.startswith("pipeline_run:")} == {
        f"pipeline_run:{world['first_run']}", f"pipeline_run:{world['rerun']}"}
    assert found["model:fraud@v2"] < found["model:fraud@production"]  # version, then its alias
    assert found["model:fraud@v2"] < found["deployment:fraud"]
    assert "model:fraud@v3" not in found  # the third push's version came from another commit
    # the pipeline run holds its job steps' jobs and runs; the deployment traces back to the commit
    assert job_runs <= set(wait_for("the pipeline run's downstream", lambda: lineage(
        admin, "downstream", f"pipeline_run:{world['first_run']}")))
    upstream = wait_for("the deployment's upstream lineage", lambda: (u := lineage(admin, "upstream", "deployment:fraud"))
                        and commit in u and u)
    assert {"model:fraud@v2", train} <= set(upstream)
