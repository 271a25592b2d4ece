"""The Terraform ``hosts`` module, applied for real: network-namespace machines with sshd,
``terraform apply`` of infra/terraform/examples/hosts-three-machines against three of them with a
Cairn wheel (v1), a small SDK workload through the gateway (a run with metrics, an artifact, a job
on the third machine's agent), the scheduled backup's script run and its backup verified; then the
registry scaled from 1 to 2 replicas and a fourth, agent-only machine added by a re-apply (a job
runs there); a rolling upgrade to a second wheel (v2) one machine and one unit at a time under a
client loop with no failed request, every Cairn process then v2's; the fourth machine taken out
again (everything on it stopped and removed); ``terraform destroy`` and nothing of Cairn left
running or on disk.

The machines share our file system and cannot reach a package index, so the wheels are this
tree's package zipped as it is (tests/terraform/wheels.py) and each machine's venv sees this
test's environment (Cairn's dependencies) through a ``.pth`` file, as an image with them baked in
would; each machine gets a root folder of its own (``separate_roots``). They have no systemd, so
the units run under ``cairn-supervise`` (production uses systemd).
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
from tests.terraform.wheels import build_wheel, machine_venv

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "infra" / "terraform" / "examples" / "hosts-three-machines"
T = TypeVar("T")
V1, V2 = "0.1.0", "0.1.1"  # two wheels of this tree that differ in their version

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
    found = Machines(tmp_path / "machines", count=4)  # the 4th: an agent machine added, then removed
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


def scheduled_backup(machines: Machines, root: Path) -> None:
    """The backup script the module wrote for ``backup`` (a timer runs it under systemd; here, in
    the first machine's namespace, by hand, three times with keep = 2): a verified backup of
    the event log, the oldest pruned (backups are named by the time, to the nanosecond)."""
    for _ in range(3):
        done = subprocess.run(["ip", "netns", "exec", machines.namespaces[0], "sh", str(root / "etc" / "backup.sh")],
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr[-3000:]
    kept = sorted((root / "backups").iterdir())
    assert len(kept) == 2, kept
    verify = subprocess.run([sys.executable, "-m", "cairn.cli.main", "--json", "backup", "verify", str(kept[-1])],
                            capture_output=True, text=True, timeout=60)
    assert verify.returncode == 0, verify.stderr
    streams = {s["stream"]: s for s in json.loads(verify.stdout)}
    assert streams["CAIRN_EVENTS"]["last_seq"] > 0 and "KV_cairn-keys" in streams, streams


def running_releases(machines: Machines, numbers: range) -> set[str]:
    """The ``CAIRN_RELEASE`` of every Cairn process (services, gateways, agents; not nats-server,
    whose units leave it out) in the machines' namespaces: the wheel each was started from."""
    found: set[str] = set()
    for number in numbers:
        for pid in machines.pids(number):
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
                environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
            except OSError:
                continue  # gone meanwhile
            if b"cairn.services" in b" ".join(cmdline) or cmdline[1:2] == [b"agent"] or b"agent" in cmdline[1:3]:
                found |= {line.split(b"=", 1)[1].decode() for line in environ if line.startswith(b"CAIRN_RELEASE=")}
    return found


def keepers(roots: Path) -> dict[str, int]:
    """machine/unit -> the pid of the process that keeps the unit running (cairn-supervise)."""
    return {f"{pid_file.parts[-3]}/{pid_file.stem}": int(pid_file.read_text().split()[0])
            for pid_file in roots.glob("*/run/*.pid")}


@pytest.mark.slow
@pytest.mark.timeout(1200)  # 7.1-9.4 min on a 2-core machine at load average 11-20 (docs/deploy.md)
def test_apply_workload_scale_restart_and_destroy(machines: Machines, tmp_path: Path) -> None:
    roots = tmp_path / "roots"
    v1, v2 = build_wheel(V1, tmp_path / "v1"), build_wheel(V2, tmp_path / "v2")
    for number in (1, 2, 3, 4):
        machine_venv(roots / f"cairn-{number}")
    terraform = Terraform(tmp_path, {
        "addresses": machines.addresses[:3], "ssh_private_key_file": str(machines.key_file),
        "install_source": str(v1), "service_manager": "cairn-supervise", "root_dir": str(roots),
        "separate_roots": True, "local_dir": str(tmp_path / "secrets"), "local_cairn": f"{sys.executable} -m cairn.cli.main",
        "extra_environment": {"PIP_DISABLE_PIP_VERSION_CHECK": "1"}, "cluster_name": f"t{os.getpid()}",
        "backup": {"keep": 2}, "replicas": {"metrics": 2},  # from the start: both write every point
    })
    terraform.run("init", "-input=false")
    applied = False
    try:
        terraform.run("apply", "-input=false", "-auto-approve")
        applied = True
        out = terraform.output()
        assert out["services"]["metrics-r2"]["host"] == "cairn-2"
        gateway = out["gateway_urls"][0]
        wait_until(gateway_ready(gateway), 240, f"the gateway at {gateway}")
        token = Path(out["admin_token_file"]).read_text().strip()
        with cairn.Client(gateway, token=token) as client:
            run_id = workload(client, tmp_path)
        scheduled_backup(machines, roots / "cairn-1")

        # more replicas by a variable: the second services machine gets registry-r2, the gateways
        # learn its URL; one more agent machine (queue "extra"); destroy is told to take the data too
        terraform.variables.update(replicas={"registry": 2, "metrics": 2}, remove_data_on_destroy=True,
                                   addresses=machines.addresses, extra_agent_queues=["extra"])
        terraform.run("apply", "-input=false", "-auto-approve")
        assert terraform.output()["services"]["registry-r2"]["host"] == "cairn-2"
        wait_until(registry_replicas(gateway, token), 240, "two ready registry replicas behind the gateway")
        with cairn.Client(gateway, token=token) as client:  # reads go round robin over both replicas
            assert [client.get_run("tf", run_id)["status"] for _ in range(4)] == ["finished"] * 4
            job = client.submit_job({"command": "echo on-the-added-machine", "code": "none", "queue": "extra"}, "tf")
            done = client.wait_job("tf", job["id"], timeout=180)
            assert done["status"] == "succeeded", done
            assert "cairn-4-extra" in json.dumps(done), done  # the agent that ran it: the new machine's

        # a rolling upgrade to the next version: each machine installs the v2 wheel, then restarts
        # its Cairn units one at a time, each waited for, one machine at a time (-parallelism=1);
        # a client writes and reads through both gateways all along; the NATS nodes keep running
        before = keepers(roots)
        assert running_releases(machines, range(1, 5)) == {v1.name}
        terraform.variables["install_source"] = str(v2)
        with ClientLoop(out["gateway_urls"], token, "tf", run_id) as loop:
            terraform.run("apply", "-input=false", "-auto-approve", "-parallelism=1")
            done = loop.done
            wait_until(lambda: loop.done > done + 3 or bool(loop.failures), 60, "client rounds after the upgrade")
        after = keepers(roots)
        assert loop.failures == [], loop.failures[:5]
        assert loop.done > 10
        restarted = {unit for unit, pid in before.items() if after.get(unit) != pid}
        assert restarted == {unit for unit in before if not unit.endswith("/cairn-nats")}, (before, after)
        assert running_releases(machines, range(1, 5)) == {v2.name}  # every Cairn process, v2's
        for number in (1, 2, 3, 4):
            version = subprocess.run([str(roots / f"cairn-{number}" / "venv" / "bin" / "cairn"), "--version"],
                                     capture_output=True, text=True, env={"PATH": os.environ["PATH"]}, timeout=60)
            assert version.stdout.split()[-1] == V2, (number, version.stdout, version.stderr[-2000:])

        # the added agent machine taken out again: everything of Cairn on it stopped and removed
        terraform.variables["addresses"] = machines.addresses[:3]
        terraform.run("apply", "-input=false", "-auto-approve")
        assert "cairn-4" not in terraform.output()["units"]
        wait_until(lambda: not machines.pids(4) or None, 60, "the removed machine's processes to stop")
        assert not (roots / "cairn-4").exists(), sorted(str(p) for p in (roots / "cairn-4").rglob("*"))[:20]
    finally:
        if applied:
            terraform.run("destroy", "-input=false", "-auto-approve")
    left = wait_until(lambda: all(not machines.pids(n) for n in (1, 2, 3, 4)) or None, 60,
                      "every Cairn process to be gone")
    assert left
    assert not roots.exists() or not any(roots.iterdir()), sorted(str(p) for p in roots.rglob("*"))[:20]
