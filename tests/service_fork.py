"""Service processes forked from a process that has already imported every service.

A platform is nine Python processes, and each spends most of its start importing the same
libraries (FastAPI, pydantic, nats-py, pyarrow, the services): across the suite's ~70 stacks that
was about half of the suite's time on two cores. The standard library's fork server imports them
once per test worker; each service is then a fork of it that sets its environment and runs the
service's ``__main__`` as ``python -m cairn.services.<name>`` would. The children are real
processes with their own pids, killed and waited for like any other (``ServiceProcess`` answers
``poll``/``wait``/``terminate``/``kill``/``send_signal`` as ``subprocess.Popen`` does).

What differs from a process started with ``exec``: ``/proc/<pid>/environ`` shows the fork server's
environment (the service's own is in ``os.environ``), and a module that reads the environment at
import time sees the fork server's. Tests that look at either start their services with
``Platform(forked=False)``."""

from __future__ import annotations

import multiprocessing
import os
import runpy
import signal
import subprocess
import sys
from multiprocessing.context import ForkServerContext
from pathlib import Path

PRELOAD = ["cairn.kernel.service", "cairn.services.gateway.app",
           *(f"cairn.services.{name}.app" for name in ("registry", "artifacts", "metrics", "scheduler", "lineage",
                                                        "deployments", "monitor", "pipelines")),
           # the monitor imports these when it closes its first window (scipy.stats, pandas: ~1.2 s)
           "cairn.monitor.drift", "cairn.monitor.profile", "cairn.monitor.performance"]
_context: ForkServerContext | None = None


def _fork_server() -> ForkServerContext:
    global _context
    if _context is None:
        context = multiprocessing.get_context("forkserver")
        assert isinstance(context, ForkServerContext)
        context.set_forkserver_preload(PRELOAD)
        _context = context
    return _context


def run_service(name: str, env: dict[str, str], log_path: str) -> None:
    """In the forked child: the environment, stdout/stderr to the service's log, then the
    service's ``__main__``."""
    os.environ.clear()
    os.environ.update(env)
    log = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    sys.stdout.flush()
    sys.stderr.flush()
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.close(log)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    runpy.run_module(f"cairn.services.{name}", run_name="__main__", alter_sys=True)


class ServiceProcess:
    """The part of ``subprocess.Popen``'s interface that the harness and tests use."""

    def __init__(self, name: str, env: dict[str, str], log_path: Path) -> None:
        self.args = [name]
        self._proc = _fork_server().Process(target=run_service, args=(name, env, str(log_path)),
                                            name=f"cairn-{name}", daemon=False)
        self._proc.start()
        assert self._proc.pid is not None
        self.pid: int = self._proc.pid

    @property
    def returncode(self) -> int | None:
        return self._proc.exitcode

    def poll(self) -> int | None:
        return self._proc.exitcode

    def wait(self, timeout: float | None = None) -> int:
        self._proc.join(timeout)
        if self._proc.exitcode is None:
            raise subprocess.TimeoutExpired(self.args, timeout or 0)
        return self._proc.exitcode

    def send_signal(self, sig: int) -> None:
        if self._proc.exitcode is None:
            os.kill(self.pid, sig)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)
