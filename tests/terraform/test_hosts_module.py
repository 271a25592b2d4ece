"""The Terraform ``hosts`` module, applied for real: three network-namespace machines with sshd,
``terraform apply`` of infra/terraform/examples/hosts-three-machines against them, a small SDK
workload through the gateway (a run with metrics, an artifact, a job on the third machine's agent),
the registry scaled from 1 to 2 replicas by a variable and a re-apply, then ``terraform destroy``
and nothing of Cairn left running or on disk.

The machines share our file system, so the module installs nothing: ``install_source`` is this
test's own virtual environment (its path is the same inside the namespaces) and the tree's
sources come first on PYTHONPATH; each machine gets a root folder of its own (``separate_roots``).
They have no systemd, so the units run under ``cairn-supervise`` (production uses systemd).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

import cairn
from tests.terraform.client_loop import ClientLoop
from tests.terraform.machines import Machines, missing_tools

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "infra" / "terraform" / "examples" / "hosts-three-machines"
T = TypeVar("T")

pytestmark = [pytest.mark.system,  # apart from the default run: `pytest -m system` (README "Development")
              pytest.mark.skipif((why := missing_tools()) is not None, reason=why or "")]


def wait_until(check: Callable[[], T | None], timeout_s: float, what: str) -> T:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.5)
    raise TimeoutError(f"waited {timeout_s:.0f} s for {what}")


class Terraform:
    """terraform on the example, with its working data and state in a folder of the test's."""

    def __init__(self, workdir: Path, variables: dict[str, Any]) -> None:
        self.workdir = workdir
        self.variables = variables
        self.env = {**os.environ, "TF_DATA_DIR": str(workdir / ".terraform"), "TF_IN_AUTOMATION": "1",
                    "TF_CLI_CONFIG_FILE": "/dev/null", "CHECKPOINT_DISABLE": "1"}

    def run(self, *args: str, timeout_s: float = 400) -> str:
        var_file = self.workdir / "test.tfvars.json"
        var_file.write_text(json.dumps(self.variables))
        state = [f"-state={self.workdir / 'terraform.tfstate'}"] if args[0] in ("apply", "destroy", "output") else []
        var_args = [f"-var-file={var_file}"] if args[0] in ("apply", "destroy") else []
        done = subprocess.run(["terraform", f"-chdir={EXAMPLE}", args[0], "-no-color", *args[1:], *state, *var_args], env=self.env,
                              capture_output=True, text=True, timeout=timeout_s)
        (self.workdir / "terraform.log").open("a").write(f"$ terraform {' '.join(args)}\n{done.stdout}\n{done.stderr}\n")
        assert done.returncode == 0, f"terraform {args[0]} failed:\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
        return done.stdout

    def output(self) -> dict[str, Any]:
        return {k: v["value"] for k, v in json.loads(self.run("output", "-json")).items()}


@pytest.fixture
def machines(tmp_path: Path) -> Iterator[Machines]:
    found = Machines(tmp_path / "machines")
    found.workdir.mkdir()
    try:
        yield found.open()
    finally:
        found.close()


def gateway_ready(url: str) -> Callable[[], bool]:
    def check() -> bool:
        try:
            return httpx.get(f"{url}/healthz", timeout=3).status_code == 200
        except httpx.HTTPError:
            return False
    return check


def registry_replicas(url: str, token: str) -> Callable[[], list[dict[str, Any]] | None]:
    """The registry's replicas as the gateway reports them, once two are there and ready."""
    def check() -> list[dict[str, Any]] | None:
        try:
            body = httpx.get(f"{url}/api/v1/status", headers={"Authorization": f"Bearer {token}"}, timeout=5).json()
        except (httpx.HTTPError, ValueError):
            return None
        replicas = body.get("services", {}).get("registry", {}).get("replicas") or []
        return replicas if len(replicas) == 2 and all(r.get("ready") for r in replicas) else None
    return check


def workload(client: cairn.Client, tmp_path: Path) -> str:
    """A run with metrics and an artifact, and a job that the third machine's agent runs."""
    artifact = tmp_path / "weights.txt"
    artifact.write_text("0.5 0.25\n")
    with cairn.start_run(project="tf", experiment="hosts", params={"lr": 0.1}, client=client,
                         system_metrics=False, record_environment=False) as run:
        for step in range(5):
            run.log_metric("loss", 1.0 / (step + 1), step=step)
        run.log_artifact(artifact)
    assert client.get_run("tf", run.id)["status"] == "finished"
    summary = wait_until(lambda: client.metric_summary("tf", run.id).get("loss"), 60, "the loss summary")
    assert summary["count"] == 5
    assert [a for a in client.artifacts.list_artifacts("tf", run.id) if "weights.txt" in json.dumps(a)]
    job = client.submit_job({"command": "echo made-on-the-agent-machine", "code": "none", "queue": "default"}, "tf")
    done = client.wait_job("tf", job["id"], timeout=120)
    assert done["status"] == "succeeded", done
    assert "made-on-the-agent-machine" in client.job_logs("tf", job["id"])
    return run.id


def keepers(roots: Path) -> dict[str, int]:
    """machine/unit -> the pid of the process that keeps the unit running (cairn-supervise)."""
    return {f"{pid_file.parts[-3]}/{pid_file.stem}": int(pid_file.read_text().split()[0])
            for pid_file in roots.glob("*/run/*.pid")}


@pytest.mark.slow
@pytest.mark.timeout(900)  # 4.6-4.8 min on a 2-core machine at load average 30-45 (docs/deploy.md)
def test_apply_workload_scale_restart_and_destroy(machines: Machines, tmp_path: Path) -> None:
    roots = tmp_path / "roots"
    terraform = Terraform(tmp_path, {
        "addresses": machines.addresses, "ssh_private_key_file": str(machines.key_file),
        "install_source": sys.prefix, "service_manager": "cairn-supervise", "root_dir": str(roots),
        "separate_roots": True, "local_dir": str(tmp_path / "secrets"), "local_cairn": f"{sys.executable} -m cairn.cli.main",
        "extra_environment": {"PYTHONPATH": os.environ.get("PYTHONPATH", "")}, "cluster_name": f"t{os.getpid()}",
    })
    terraform.run("init", "-input=false")
    applied = False
    try:
        terraform.run("apply", "-input=false", "-auto-approve")
        applied = True
        out = terraform.output()
        gateway = out["gateway_urls"][0]
        wait_until(gateway_ready(gateway), 240, f"the gateway at {gateway}")
        token = Path(out["admin_token_file"]).read_text().strip()
        with cairn.Client(gateway, token=token) as client:
            run_id = workload(client, tmp_path)

        # more replicas by a variable: the second services machine gets registry-r2, the gateways
        # learn its URL; destroy is told to take the data too
        terraform.variables.update(replicas={"registry": 2}, remove_data_on_destroy=True)
        terraform.run("apply", "-input=false", "-auto-approve")
        assert terraform.output()["services"]["registry-r2"]["host"] == "cairn-2"
        wait_until(registry_replicas(gateway, token), 240, "two ready registry replicas behind the gateway")
        with cairn.Client(gateway, token=token) as client:  # reads go round robin over both replicas
            assert [client.get_run("tf", run_id)["status"] for _ in range(4)] == ["finished"] * 4

        # a rolling restart of what serves the client loop: a setting of the registry's and the
        # gateways' changes, so their units restart, one machine at a time (-parallelism=1) and
        # one unit at a time, each waited for; a client writes and reads all along
        before = keepers(roots)
        terraform.variables["service_environment"] = {"registry": {"CAIRN_TEST_RELEASE": "2"},
                                                      "gateway": {"CAIRN_TEST_RELEASE": "2"}}
        with ClientLoop(out["gateway_urls"], token, "tf", run_id) as loop:
            terraform.run("apply", "-input=false", "-auto-approve", "-parallelism=1")
            done = loop.done
            wait_until(lambda: loop.done > done + 3 or bool(loop.failures), 60, "client rounds after the restart")
        after = keepers(roots)
        assert loop.failures == [], loop.failures[:5]
        assert loop.done > 10
        restarted = {unit for unit, pid in before.items() if after.get(unit) != pid}
        assert restarted == {"cairn-1/cairn-registry", "cairn-2/cairn-registry-r2", "cairn-1/cairn-gateway",
                             "cairn-2/cairn-gateway"}, (before, after)
    finally:
        if applied:
            terraform.run("destroy", "-input=false", "-auto-approve")
    left = wait_until(lambda: all(not machines.pids(n) for n in (1, 2, 3)) or None, 60,
                      "every Cairn process to be gone")
    assert left
    assert not roots.exists() or not any(roots.iterdir()), sorted(str(p) for p in roots.rglob("*"))[:20]
