"""Serving benchmark: ``cairn serve`` side by side with ``mlflow models serve``, same model, one run.

Workload (issue 19): one scikit-learn RandomForestClassifier (100 trees, 20 features, fixed seed;
serving_model.py builds it identically in both venvs) served on loopback and loaded by an asyncio +
aiohttp generator in this process: N keep-alive clients each POST ``/invocations`` back to back
(``dataframe_split`` bodies of 1 or 100 rows) for ``--duration`` seconds after a ``--warmup``.
Reported per side and level: requests/s, rows/s, p50/p99 latency, non-200 answers.

- MLflow (side venv, see mlflow_side.py): ``mlflow.sklearn.save_model``, then
  ``mlflow models serve -m DIR --env-manager local`` (its default: 1 uvicorn worker).
- Cairn: ``cairn serve`` loads models through a platform's registry (it has no local-directory
  mode), so a platform is started as the tests do (tests/platform_harness.py), the model is logged
  with ``run.log_model`` and served ``--public``, without batching and with ``--max-batch 64
  --max-wait-ms 2``. Both servers are one process.
- Inference logging: two deployments of the same version (replicas 0, batching 64/2, public),
  sample_rate 1.0 and 0.0, each served by ``cairn serve --deployment`` started here; the samples
  travel through the gateway and the deployments service to the ``CAIRN_INFERENCE`` stream.
- Bare ``model.predict`` on 1 and 100 rows (DataFrame in, median of many calls): serving
  overhead = p50 at 1 client - bare predict.

The load generator shares the machine with the servers (and, for Cairn, with the idle platform):
on a small machine the figures measure the whole box, not a server alone.

Usage: python benchmarks/bench_serving.py [--duration 10] [--warmup 1] [--clients 1,8,64]
       [--rows 1,100] [--no-mlflow] [--no-logging]      (quick: --duration 3)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform as pyplatform
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import aiohttp
import httpx

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))
sys.path.insert(0, str(HERE))
from mlflow_side import _free_port, mlflow_version, side_venv  # noqa: E402
from serving_model import body_rows, make_model  # noqa: E402

from cairn.sdk.client import Client  # noqa: E402
from cairn.sdk.deployments import Deployments  # noqa: E402
from cairn.sdk.run import start_run  # noqa: E402

from platform_harness import Platform, running  # noqa: E402

PROJECT, MODEL = "bench-serving", "forest"
LISTENING = re.compile(r"serving \S+ version \d+ on (http://\S+)")

MLFLOW_SAVE = r'''
import sys
sys.path.insert(0, sys.argv[1])
import mlflow.sklearn
from serving_model import make_model
model, frame = make_model()
# MLflow 3's default format (skops) asks which node types to trust: the forest's trees, made here
mlflow.sklearn.save_model(model, sys.argv[2], input_example=frame.head(5),
                          skops_trusted_types=["sklearn.tree._tree.Tree"])
'''


# --- servers -----------------------------------------------------------------------------------------
def _stop(proc: subprocess.Popen[Any]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _wait_ready(url: str, proc: subprocess.Popen[Any], log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited; see {log}:\n{log.read_text()[-2000:]}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"server not ready after {timeout} s; see {log}")
        time.sleep(0.2)


@contextmanager
def mlflow_serving(workdir: Path, timeout: float = 180.0) -> Iterator[tuple[str, str]]:
    """Save the model with MLflow (side venv) and serve it; yields (url, mlflow version)."""
    python = side_venv()
    model_dir = workdir / "mlflow-model"
    subprocess.run([str(python), "-c", MLFLOW_SAVE, str(HERE), str(model_dir)], check=True)
    port = _free_port()
    log = workdir / "mlflow-serve.log"
    env = {**os.environ, "PATH": f"{python.parent}{os.pathsep}{os.environ.get('PATH', '')}",
           "MLFLOW_TRACKING_URI": f"file://{workdir / 'mlruns'}"}
    with open(log, "ab") as out:
        proc = subprocess.Popen([str(python), "-m", "mlflow", "models", "serve", "-m", str(model_dir),
                                 "--env-manager", "local", "-p", str(port), "-h", "127.0.0.1"],
                                stdout=out, stderr=out, env=env, start_new_session=True)
    try:
        url = f"http://127.0.0.1:{port}"
        _wait_ready(f"{url}/ping", proc, log, timeout)
        yield url, mlflow_version(python)
    finally:
        _stop(proc)


@contextmanager
def cairn_serving(plat: Platform, workdir: Path, *args: str, timeout: float = 120.0) -> Iterator[str]:
    """``cairn serve --port 0 ARGS`` against ``plat``; yields the URL it prints once listening."""
    env = {**os.environ, "CAIRN_URL": plat.gateway, "CAIRN_TOKEN": plat.token,
           "CAIRN_MODEL_CACHE": str(workdir / "model-cache"), "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "cairn.cli.main", "serve", "--port", "0", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    lines: list[str] = []
    found = threading.Event()
    url: list[str] = []

    def pump() -> None:  # keeps reading after the first line, so the pipe never fills
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            match = LISTENING.search(line)
            if match and not url:
                url.append(match.group(1))
                found.set()
        found.set()

    threading.Thread(target=pump, daemon=True).start()
    try:
        if not found.wait(timeout) or not url:
            raise RuntimeError("cairn serve did not start:\n" + "".join(lines[-40:]))
        yield url[0]
    finally:
        _stop(proc)


# --- load --------------------------------------------------------------------------------------------
async def _load(url: str, body: bytes, clients: int, duration: float, warmup: float) -> dict[str, Any]:
    """``clients`` keep-alive clients posting ``body`` back to back; counts what starts and ends
    inside the measured window (after the warm-up)."""
    latencies: list[float] = []
    errors = [0]
    loop = asyncio.get_running_loop()
    begin = loop.time() + warmup
    end = begin + duration
    headers = {"Content-Type": "application/json"}
    connector = aiohttp.TCPConnector(limit=clients, limit_per_host=clients)
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def client() -> None:
            while True:
                started = loop.time()
                if started >= end:
                    return
                async with session.post(url, data=body, headers=headers) as resp:
                    await resp.read()
                    status = resp.status
                finished = loop.time()
                if started >= begin and finished <= end:
                    latencies.append(finished - started)
                    if status != 200:
                        errors[0] += 1

        await asyncio.gather(*(client() for _ in range(clients)))
    latencies.sort()
    count = len(latencies)

    def pct(p: float) -> float:
        return latencies[min(count - 1, int(p * count))] * 1e3 if count else float("nan")

    return {"requests": count, "rps": count / duration, "p50_ms": pct(0.50), "p99_ms": pct(0.99),
            "errors": errors[0]}


def measure(url: str, bodies: dict[int, bytes], clients: list[int], duration: float,
            warmup: float) -> dict[tuple[int, int], dict[str, Any]]:
    out = {}
    for rows, body in bodies.items():
        for n in clients:
            result = asyncio.run(_load(f"{url}/invocations", body, n, duration, warmup))
            result["rows_s"] = result["rps"] * rows
            out[(n, rows)] = result
    return out


def answers(url: str, body: bytes) -> list[Any]:
    resp = httpx.post(f"{url}/invocations", content=body, headers={"Content-Type": "application/json"},
                      timeout=60)
    resp.raise_for_status()
    return list(resp.json()["predictions"])


def bare_predict(model: Any, frame: Any, rows: list[int], budget_s: float = 2.0) -> dict[int, float]:
    """Median ms of ``model.predict`` on a DataFrame of ``rows`` rows."""
    out = {}
    for n in rows:
        part = frame.iloc[:n].copy()
        times: list[float] = []
        stop = time.perf_counter() + budget_s
        while time.perf_counter() < stop or len(times) < 5:
            start = time.perf_counter()
            model.predict(part)
            times.append(time.perf_counter() - start)
        out[n] = statistics.median(times) * 1e3
    return out


# --- report ------------------------------------------------------------------------------------------
def print_table(results: dict[str, dict[tuple[int, int], dict[str, Any]]]) -> None:
    print(f"\n{'side':<22}{'clients':>8}{'rows':>6}{'req/s':>10}{'rows/s':>11}{'p50 ms':>9}{'p99 ms':>9}"
          f"{'non-200':>9}")
    for side, cells in results.items():
        for (n, rows), r in sorted(cells.items(), key=lambda kv: (kv[0][1], kv[0][0])):
            print(f"{side:<22}{n:>8}{rows:>6}{r['rps']:>10,.0f}{r['rows_s']:>11,.0f}{r['p50_ms']:>9.2f}"
                  f"{r['p99_ms']:>9.2f}{r['errors']:>9}")


def print_ratios(results: dict[str, dict[tuple[int, int], dict[str, Any]]], bare: dict[int, float]) -> None:
    mlflow = results.get("mlflow")
    if mlflow:
        print("\nratios (targets at 64 clients with batching: throughput >= 3x; p99 lower at every level):")
        print(f"  {'clients':>7}{'rows':>6}  {'tput cairn/mlflow':>18}{'batched/mlflow':>16}"
              f"  {'p99 mlflow/cairn':>17}{'mlflow/batched':>16}")
        for key in sorted(mlflow, key=lambda k: (k[1], k[0])):
            m, c, b = mlflow[key], results["cairn"][key], results["cairn batched"][key]
            print(f"  {key[0]:>7}{key[1]:>6}  {c['rps'] / m['rps']:>17.2f}x{b['rps'] / m['rps']:>15.2f}x"
                  f"  {m['p99_ms'] / c['p99_ms']:>16.2f}x{m['p99_ms'] / b['p99_ms']:>15.2f}x")
    print("\nserving overhead at 1 client (p50 - bare model.predict on a DataFrame):")
    for rows, ms in sorted(bare.items()):
        parts = [f"{side} {cells[(1, rows)]['p50_ms'] - ms:.2f} ms" for side, cells in results.items()
                 if (1, rows) in cells]
        print(f"  {rows:>4} rows: bare predict {ms:.2f} ms; " + ", ".join(parts))


# --- sides -------------------------------------------------------------------------------------------
def run_mlflow(workdir: Path, bodies: dict[int, bytes], clients: list[int], duration: float,
               warmup: float) -> tuple[dict[tuple[int, int], dict[str, Any]], str, list[Any]]:
    with mlflow_serving(workdir) as (url, version):
        check = answers(url, bodies[max(bodies)])
        return measure(url, bodies, clients, duration, warmup), version, check


def run_cairn(workdir: Path, frame: Any, model: Any, bodies: dict[int, bytes], clients: list[int],
              duration: float, warmup: float, logging: bool) -> dict[str, Any]:
    out: dict[str, Any] = {"results": {}}
    with running(Platform(workdir / "platform")) as plat, Client(plat.gateway, plat.token) as client:
        with start_run(PROJECT, client=client, system_metrics=False, record_environment=False) as run:
            version = int(run.log_model(model, MODEL, input_example=frame.head(5))["version"])
        out["check"] = []
        for side, extra in (("cairn", ()), ("cairn batched", ("--max-batch", "64", "--max-wait-ms", "2"))):
            with cairn_serving(plat, workdir, "-p", PROJECT, f"{MODEL}/{version}", "--public", *extra) as url:
                out["check"].append(answers(url, bodies[max(bodies)]))
                out["results"][side] = measure(url, bodies, clients, duration, warmup)
        if logging:
            deployments = Deployments(client)
            top = max(clients)
            for name, rate in (("logging-off", 0.0), ("logging-on", 1.0)):
                deployments.create(PROJECT, name, environment="dev", model=MODEL, version=version, replicas=0,
                                   sample_rate=rate, batching={"max_batch": 64, "max_wait_ms": 2}, public=True)
                with cairn_serving(plat, workdir, "--deployment", f"{PROJECT}/{name}") as url:
                    out[name] = measure(url, {1: bodies[1]}, [top], duration, warmup)[(top, 1)]
                out[f"{name}-logged"] = len(deployments.requests(PROJECT, name, since="1h", limit=100)
                                            .get("requests", []))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=float, default=10.0, help="measured seconds per level")
    parser.add_argument("--warmup", type=float, default=1.0, help="unmeasured seconds before each level")
    parser.add_argument("--clients", default="1,8,64", help="concurrent clients, comma-separated")
    parser.add_argument("--rows", default="1,100", help="rows per request, comma-separated")
    parser.add_argument("--no-mlflow", action="store_true")
    parser.add_argument("--no-logging", action="store_true", help="skip the inference-logging comparison")
    args = parser.parse_args()
    clients = [int(c) for c in args.clients.split(",")]
    row_counts = [int(r) for r in args.rows.split(",")]
    if min(clients) < 1 or min(row_counts) < 1 or max(row_counts) > 5000:
        parser.error("--clients must be >= 1 and --rows between 1 and 5000")
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    print(f"machine: {pyplatform.machine()} {os.cpu_count()} cpus, python {pyplatform.python_version()}, "
          f"load {os.getloadavg()[0]:.1f}, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    model, frame = make_model()
    bodies = {rows: json.dumps(body_rows(frame, rows)).encode() for rows in sorted(set(row_counts) | {1})}
    bare = bare_predict(model, frame, row_counts)
    print(f"model: RandomForestClassifier(100 trees) on {frame.shape[1]} features; "
          f"levels: clients {clients} x rows {row_counts}, {args.duration:g} s each after {args.warmup:g} s warm-up")
    results: dict[str, dict[tuple[int, int], dict[str, Any]]] = {}
    with tempfile.TemporaryDirectory(prefix="cairn-bench-serving-") as tmp:
        if not args.no_mlflow:
            results["mlflow"], version, m_check = run_mlflow(Path(tmp) / "mlflow", bodies, clients,
                                                             args.duration, args.warmup)
            print(f"mlflow {version}: models serve --env-manager local (1 worker)")
        c = run_cairn(Path(tmp) / "cairn", frame, model, bodies, clients, args.duration, args.warmup,
                      not args.no_logging)
    results.update(c["results"])
    expected = [int(v) for v in model.predict(frame.iloc[:max(bodies)])]
    same = all([int(v) for v in check] == expected for check in c["check"])
    if not args.no_mlflow:
        same = same and [int(v) for v in m_check] == expected
    print(f"answers: {'identical to the local model on every server' if same else 'DIFFER from the local model'}")
    print_table(results)
    print_ratios(results, bare)
    if not args.no_logging:
        on, off = c["logging-on"], c["logging-off"]
        top = max(clients)
        print(f"\ninference logging ({top} clients, 1 row, deployment mode, batching 64/2): "
              f"sample 100% {on['rps']:,.0f} req/s (p99 {on['p99_ms']:.2f} ms), "
              f"0% {off['rps']:,.0f} req/s (p99 {off['p99_ms']:.2f} ms); on/off {on['rps'] / off['rps']:.2f} "
              f"(target >= 0.90); requests in the log after: on {c['logging-on-logged']}, "
              f"off {c['logging-off-logged']} (query limit 100)")


if __name__ == "__main__":
    main()
