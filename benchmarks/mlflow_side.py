"""MLflow's own tracking server in a side virtual environment, for side-by-side benchmarks.

The benchmark scripts measure Cairn against MLflow in the same run. MLflow is not a dependency of
Cairn, so it lives in a venv of its own (made on first use, reused after), and its tracking server
runs on loopback with a SQLite backend store and a local artifact root, as the issue prescribes:

    with mlflow_server(workdir) as server:
        server.url          # http://127.0.0.1:PORT
        server.python       # the side venv's python, to run client workloads with mlflow imported

``CAIRN_BENCH_MLFLOW_VENV`` names the venv (default ``~/.cache/cairn-bench/mlflow-venv``);
``CAIRN_BENCH_MLFLOW_SPEC`` the pip requirement (default ``mlflow``).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

DEFAULT_VENV = Path.home() / ".cache" / "cairn-bench" / "mlflow-venv"


@dataclass(frozen=True)
class MlflowServer:
    url: str
    python: Path
    version: str
    workdir: Path


def side_venv() -> Path:
    """The side venv holding mlflow, created and filled on first use; returns its python."""
    venv = Path(os.environ.get("CAIRN_BENCH_MLFLOW_VENV", DEFAULT_VENV))
    python = venv / "bin" / "python"
    if not python.exists():
        print(f"creating {venv} with mlflow (one time)...", file=sys.stderr, flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    probe = subprocess.run([str(python), "-c", "import mlflow"], capture_output=True)
    if probe.returncode != 0:
        spec = os.environ.get("CAIRN_BENCH_MLFLOW_SPEC", "mlflow")
        subprocess.run([str(python), "-m", "pip", "install", "-q", spec], check=True)
    return python


def mlflow_version(python: Path) -> str:
    out = subprocess.run([str(python), "-c", "import mlflow; print(mlflow.__version__)"],
                         capture_output=True, text=True, check=True)
    return out.stdout.strip()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def mlflow_server(workdir: Path, workers: int = 2, timeout: float = 120.0, *,
                  artifacts_destination: str | None = None,
                  env: dict[str, str] | None = None) -> Iterator[MlflowServer]:
    """Start ``mlflow server`` (SQLite store, artifacts proxied from a local folder, or from
    ``artifacts_destination``, e.g. ``s3://bucket/prefix`` with ``MLFLOW_S3_ENDPOINT_URL`` and AWS
    keys in ``env``) and stop it after."""
    python = side_venv()
    if artifacts_destination and artifacts_destination.startswith("s3://"):
        if subprocess.run([str(python), "-c", "import boto3"], capture_output=True).returncode != 0:
            subprocess.run([str(python), "-m", "pip", "install", "-q", "boto3"], check=True)
    workdir.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    argv = [str(python), "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
            "--backend-store-uri", f"sqlite:///{workdir / 'mlflow.db'}",
            "--artifacts-destination", artifacts_destination or str(workdir / "artifacts"),
            "--workers", str(workers)]
    log = open(workdir / "mlflow-server.log", "ab")  # noqa: SIM115 - the child owns it
    proc = subprocess.Popen(argv, stdout=log, stderr=log, start_new_session=True,
                            env={**os.environ, **(env or {})})
    log.close()
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"mlflow server exited; see {workdir / 'mlflow-server.log'}")
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"mlflow server not up after {timeout} s; see {workdir}")
            time.sleep(0.2)
        yield MlflowServer(url, python, mlflow_version(python), workdir)
    finally:
        os.killpg(proc.pid, 15)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            proc.wait()
