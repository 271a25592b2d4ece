"""One attempt of one rank of a job on this agent: prepare inputs, run the command in its own
process group in the code folder, stream its output, enforce the timeout, stop the whole group
on cancel (SIGTERM, then SIGKILL after a grace period), keep the log as a run artifact."""

from __future__ import annotations

import asyncio
import ctypes
import errno
import json
import os
import re
import shutil
import signal
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cairn.protocol import log_subject

if TYPE_CHECKING:
    from cairn.agent.agent import Agent

CHUNK = 64 * 1024
PR_SET_PDEATHSIG = 1
SETPRIV = shutil.which("setpriv")  # util-linux: sets the parent-death signal, then execs the command
AGENT_STOPPING = "agent stopping"


def _die_with_agent() -> None:
    """In the child before exec: if the agent dies (SIGKILL), the job's process gets SIGKILL
    too, so a lost agent leaves no job running that could race its retry."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except OSError:
        pass


def with_death_signal(command: list[str], *, cwd: str | os.PathLike[str] | None,
                      env: dict[str, str]) -> tuple[list[str], Any]:
    """The argv to start and the function to run in the child before exec (None: none needed).
    With ``setpriv`` the child sets its parent-death signal itself, so Python starts it with vfork
    instead of fork (which copies the agent's page tables under its event loop for every job);
    the command is looked up first, so a missing one still fails to start rather than exiting 127."""
    if SETPRIV is None:
        return list(command), _die_with_agent
    program = command[0]
    if os.sep in program:
        path = Path(cwd or ".", program)
        if not path.is_file():
            raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), program)
        if not os.access(path, os.X_OK):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), program)
    elif shutil.which(program, path=env.get("PATH", os.defpath)) is None:
        raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), program)
    return [SETPRIV, "--pdeathsig", "KILL", "--", *command], None


def param_env_name(key: str) -> str:
    return "CAIRN_PARAM_" + re.sub(r"[^A-Za-z0-9]", "_", key).upper()


def job_environment(assignment: dict[str, Any], *, url: str, token: str | None, datasets: dict[str, Path],
                    venv: Path | None) -> dict[str, str]:
    """The job's environment: the platform's coordinates, its params and the rendezvous."""
    spec = assignment["spec"]
    env = dict(os.environ)
    for name in [k for k in env if k.startswith(("CAIRN_", "MASTER_", "VIRTUAL_ENV"))]:
        env.pop(name)
    path = env.get("PATH", "")
    bin_dirs = [str(venv / "bin")] if venv else []
    bin_dirs.append(str(Path(sys.executable).parent))  # `python` is this interpreter (cairn importable)
    env["PATH"] = os.pathsep.join([*bin_dirs, path])
    if venv:
        env["VIRTUAL_ENV"] = str(venv)
    env.update(spec.get("env", {}))
    env.update({
        "CAIRN_URL": url, "CAIRN_PROJECT": assignment["project"], "CAIRN_RUN_ID": assignment["run_id"],
        "CAIRN_JOB_ID": assignment["job_id"], "CAIRN_ATTEMPT": str(assignment["attempt"]),
        "CAIRN_PARAMS": json.dumps(spec["params"], sort_keys=True), "CAIRN_SYSTEM_METRICS": "0",
        "PYTHONUNBUFFERED": "1",
        "MASTER_ADDR": assignment["master_addr"], "MASTER_PORT": str(assignment["master_port"]),
        "WORLD_SIZE": str(assignment["world_size"]), "RANK": str(assignment["rank"]), "LOCAL_RANK": "0",
        "NODE_RANK": str(assignment["rank"]), "LOCAL_WORLD_SIZE": "1",
    })
    if token:
        env["CAIRN_TOKEN"] = token
    if spec.get("seed") is not None:
        env["CAIRN_SEED"] = str(spec["seed"])
    for key, value in spec["params"].items():
        env[param_env_name(key)] = str(value).lower() if isinstance(value, bool) else str(value)
    for ref, folder in datasets.items():
        env["CAIRN_DATASET_" + re.sub(r"[^A-Za-z0-9]", "_", ref.split("@")[0]).upper()] = str(folder)
    return env


class Attempt:
    def __init__(self, agent: Agent, assignment: dict[str, Any]) -> None:
        self.agent = agent
        self.a = assignment
        self.key = (assignment["job_id"], assignment["attempt"], assignment["rank"])
        self.dir = agent.work_dir / "jobs" / assignment["job_id"] / f"{assignment['attempt']}-{assignment['rank']}"
        self.log_path = self.dir / "output.log"
        self.subject = log_subject(assignment["project"], assignment["job_id"], assignment["attempt"])
        self.stop_reason: str | None = None
        self.proc: asyncio.subprocess.Process | None = None
        self._stopped = asyncio.Event()
        self._log_file: Any = None
        self._partial = b""

    def describe(self) -> dict[str, Any]:
        return {"project": self.a["project"], "job_id": self.a["job_id"], "attempt": self.a["attempt"],
                "rank": self.a["rank"]}

    def write(self, data: bytes) -> None:
        """Append output to the log file and the live log stream (one rank's stream: rank 0's,
        or every rank's lines prefixed with the rank for multi-node jobs)."""
        if not data:
            return
        if self.a["world_size"] > 1:  # whole lines only, so ranks' lines do not run together
            data, self._partial = self._partial + data, b""
            cut = data.rfind(b"\n") + 1
            data, self._partial = data[:cut], data[cut:]
            prefix = f"[rank {self.a['rank']}] ".encode()
            data = b"".join(prefix + line for line in data.splitlines(keepends=True))
            if not data:
                return
        if self._log_file is not None:
            self._log_file.write(data)
        for start in range(0, len(data), CHUNK):
            self.agent.publish_log(self.subject, data[start:start + CHUNK])

    def stop(self, reason: str) -> None:
        if self.stop_reason is None:
            self.stop_reason = reason
        self._stopped.set()

    async def run(self) -> dict[str, Any]:
        """Run to the end; returns the exit report (exit_code, reason, message)."""
        self.dir.mkdir(parents=True, exist_ok=True)
        self._log_file = open(self.log_path, "ab", buffering=0)  # noqa: SIM115 - closed in finally
        try:
            return await self._run()
        finally:
            if self._partial:
                self.write(b"\n")  # complete the last line
            self._log_file.close()
            self._log_file = None

    async def _run(self) -> dict[str, Any]:
        spec = self.a["spec"]
        try:
            # fetching code, datasets or a Python env blocks: a thread; a bare command does not
            needs_fetch = spec.get("code") or spec["datasets"] or spec["requirements"]
            env = await asyncio.to_thread(self._prepare) if needs_fetch else self._prepare()
        except Exception as err:  # noqa: BLE001 - any failure to prepare fails the attempt
            self.write(f"[cairn-agent] preparing the job failed: {err}\n".encode())
            return {"exit_code": None, "reason": "error", "message": f"preparing the job failed: {err}"}
        if self.stop_reason:
            reason = "lost" if self.stop_reason == AGENT_STOPPING else "error"
            return {"exit_code": None, "reason": reason, "message": f"stopped before start: {self.stop_reason}"}
        try:
            argv, before_exec = with_death_signal(spec["command"], cwd=self.code_dir, env=env)
            self.proc = await asyncio.create_subprocess_exec(
                *argv, cwd=self.code_dir, env=env, stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, start_new_session=True,
                preexec_fn=before_exec)
        except OSError as err:
            self.write(f"[cairn-agent] cannot start {spec['command'][0]!r}: {err}\n".encode())
            return {"exit_code": 127, "reason": "exit", "message": f"cannot start the command: {err}"}
        await self.agent.report_started(self, time.time())
        pump = asyncio.create_task(self._pump())
        waiter = asyncio.create_task(self.proc.wait())
        stopper = asyncio.create_task(self._stopped.wait())
        done, _ = await asyncio.wait({waiter, stopper}, timeout=spec.get("timeout"),
                                     return_when=asyncio.FIRST_COMPLETED)
        reason = "exit"
        if waiter not in done:
            reason = "timeout" if not done else "stopped"
            await self._kill_group()
        stopper.cancel()
        code = await waiter
        self._kill_leftovers()
        try:
            await asyncio.wait_for(pump, timeout=5)
        except asyncio.TimeoutError:
            pump.cancel()
        if reason == "timeout":
            self.write(f"\n[cairn-agent] timed out after {spec['timeout']:g}s; process group stopped\n".encode())
            return {"exit_code": code, "reason": "timeout", "message": f"timed out after {spec['timeout']:g}s"}
        if reason == "stopped":
            self.write(f"\n[cairn-agent] stopped ({self.stop_reason}); process group stopped\n".encode())
            # an agent shutting down is the platform's doing: retried like a lost attempt
            reason = {"cancel": "exit", AGENT_STOPPING: "lost"}.get(self.stop_reason or "", "error")
            return {"exit_code": code, "reason": reason, "message": f"stopped: {self.stop_reason}"}
        return {"exit_code": code, "reason": "exit", "message": "" if code == 0 else f"exited with {code}"}

    def _prepare(self) -> dict[str, str]:
        spec, ws = self.a["spec"], self.agent.workspace
        self.code_dir = self.dir / "code"
        if spec.get("code"):
            self.write(f"[cairn-agent] code {spec['code']['archive_digest'][:12]}\n".encode())
            ws.code(spec["code"]["archive_digest"], self.code_dir)
        else:
            self.code_dir.mkdir(parents=True, exist_ok=True)
        datasets: dict[str, Path] = {}
        for ref in spec["datasets"]:
            path, record = ws.dataset(self.a["project"], ref)
            datasets[ref] = path
            self.write(f"[cairn-agent] dataset {ref} -> {path}\n".encode())
            if self.a["rank"] == 0:
                self.agent.client.artifacts.use_dataset(self.a["project"], self.a["run_id"], ref)
        venv = ws.python_env(spec["requirements"], self.code_dir, self.write)
        # the job's own token (minted by the scheduler for this job); a scheduler that sends none
        # (an older one) leaves the job the agent's token, as before
        token = self.a.get("token") or self.agent.client.token
        return job_environment(self.a, url=self.agent.client.url, token=token, datasets=datasets, venv=venv)

    async def _pump(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        while True:
            data = await self.proc.stdout.read(CHUNK)
            if not data:
                return
            self.write(data)

    async def _kill_group(self) -> None:
        """SIGTERM the process group, then SIGKILL what is left after the grace period."""
        assert self.proc is not None
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        try:
            await asyncio.wait_for(self.proc.wait(), timeout=self.agent.grace_s)
        except asyncio.TimeoutError:
            pass
        self._kill_leftovers()

    def _kill_leftovers(self) -> None:
        """Nothing a job started outlives it: SIGKILL whatever remains in its group."""
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass

    def finish_log(self) -> None:
        self.agent.publish_log(self.subject, b"", end=True)
