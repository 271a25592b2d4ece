"""Serving benchmark: ``cairn serve`` side by side with ``mlflow models serve``, same model, one run.

Workload (issue 19): one scikit-learn RandomForestClassifier (100 trees, 20 features, fixed seed;
serving_model.py builds it identically in both venvs) served on loopback and loaded by an asyncio +
aiohttp generator in this process: N keep-alive clients each POST ``/invocations`` back to back
(``dataframe_split`` bodies of 1 or 100 rows) for ``--duration`` seconds after a ``--warmup``.
Reported per side and level: requests/s, rows/s, p50/p99 latency, failed requests (not 200, or no
answer), and the CPU the server's process group and the generator used in the window (100 = a core).

- MLflow (side venv, see mlflow_side.py): ``mlflow.sklearn.save_model``, then
  ``mlflow models serve -m DIR --env-manager local`` (its default: 1 uvicorn worker).
- Cairn: ``cairn serve`` loads models through a platform's registry (it has no local-directory
  mode), so a platform is started as the tests do (tests/platform_harness.py), the model is logged
  with ``run.log_model`` and served ``--public``, without batching and with ``--max-batch 512
  --max-wait-ms 2`` (rows per model call). Both servers are one process.
- Inference logging: two deployments of the same version (replicas 0, batching 512/2, public),
  sample_rate 1.0 and 0.0, each served by ``cairn serve --deployment`` started here (both up, measured
  off, on, on, off); the samples travel through the gateway and the deployments service to the
  ``CAIRN_INFERENCE`` stream, and the sampled requests readable back are counted.
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
import contextlib
import json
import os
import platform as pyplatform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import aiohttp
import httpx

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))
sys.path.insert(0, str(HERE.parent / "tests" / "serving"))
sys.path.insert(0, str(HERE))
from mlflow_side import _free_port, mlflow_version, side_venv  # noqa: E402
from serving_model import body_rows, make_model  # noqa: E402
from serving_proc import listening_url  # noqa: E402

from cairn.sdk.client import Client  # noqa: E402
from cairn.sdk.deployments import Deployments  # noqa: E402
from cairn.sdk.run import start_run  # noqa: E402

from platform_harness import Platform, running  # noqa: E402

PROJECT, MODEL = "bench-serving", "forest"
MAX_BATCH = 512  # rows per model call when batching: five 100-row requests, or 512 single rows

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
def group_cpu_s(pgid: int) -> float:
    """CPU seconds (user + system) used so far by the processes of group ``pgid`` (Linux /proc):
    a server and any workers it forked, since each is started in a session of its own."""
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:  # the process ended meanwhile
            continue
        fields = text[text.rfind(")") + 2:].split()
        if int(fields[2]) == pgid:
            total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


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
def mlflow_serving(workdir: Path, timeout: float = 180.0) -> Iterator[tuple[str, int, str]]:
    """Save the model with MLflow (side venv) and serve it; yields (url, process group, mlflow version)."""
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
        yield url, proc.pid, mlflow_version(python)
    finally:
        _stop(proc)


@contextmanager
def cairn_serving(plat: Platform, workdir: Path, *args: str, timeout: float = 120.0) -> Iterator[tuple[str, int]]:
    """``cairn serve --port 0 ARGS`` against ``plat``; yields (the URL it prints once listening,
    its process group)."""
    env = {**os.environ, "CAIRN_URL": plat.gateway, "CAIRN_TOKEN": plat.token,
           "CAIRN_MODEL_CACHE": str(workdir / "model-cache"), "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "cairn.cli.main", "serve", "--port", "0", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        url = listening_url(proc, [], timeout)
        yield url, proc.pid
    finally:
        _stop(proc)


# --- load --------------------------------------------------------------------------------------------
async def _load(url: str, pgid: int, body: bytes, clients: int, duration: float, warmup: float) -> dict[str, Any]:
    """``clients`` keep-alive clients posting ``body`` back to back; counts what starts and ends
    inside the measured window (after the warm-up), and the CPU the server's process group and
    this generator used in it (100 = one core busy)."""
    latencies: list[float] = []
    errors = [0]
    loop = asyncio.get_running_loop()
    begin = loop.time() + warmup
    end = begin + duration
    cpu: list[tuple[float, float]] = []
    for at in (begin, end):
        loop.call_at(at, lambda: cpu.append((group_cpu_s(pgid), time.process_time())))
    headers = {"Content-Type": "application/json"}
    connector = aiohttp.TCPConnector(limit=clients, limit_per_host=clients)
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def client() -> None:
            while True:
                started = loop.time()
                if started >= end:
                    return
                try:
                    async with session.post(url, data=body, headers=headers) as resp:
                        await resp.read()
                        status = resp.status
                except (aiohttp.ClientError, asyncio.TimeoutError):  # counted, and the client goes on
                    status = 0
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

    (srv0, gen0), (srv1, gen1) = cpu
    return {"requests": count, "rps": count / duration, "p50_ms": pct(0.50), "p99_ms": pct(0.99),
            "errors": errors[0], "srv_cpu": 100 * (srv1 - srv0) / duration, "gen_cpu": 100 * (gen1 - gen0) / duration}


def measure(url: str, pgid: int, bodies: dict[int, bytes], clients: list[int], duration: float,
            warmup: float) -> dict[tuple[int, int], dict[str, Any]]:
    out = {}
    for rows, body in bodies.items():
        for n in clients:
            result = asyncio.run(_load(f"{url}/invocations", pgid, body, n, duration, warmup))
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
          f"{'failed':>8}{'srv cpu%':>10}{'gen cpu%':>10}")
    for side, cells in results.items():
        for (n, rows), r in sorted(cells.items(), key=lambda kv: (kv[0][1], kv[0][0])):
            print(f"{side:<22}{n:>8}{rows:>6}{r['rps']:>10,.0f}{r['rows_s']:>11,.0f}{r['p50_ms']:>9.2f}"
                  f"{r['p99_ms']:>9.2f}{r['errors']:>8}{r['srv_cpu']:>10.0f}{r['gen_cpu']:>10.0f}")


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
        print(f"  {rows:>4} rows: bare predict {ms:.2f} ms" + ("; " + ", ".join(parts) if parts else ""))


# --- sides -------------------------------------------------------------------------------------------
def run_mlflow(workdir: Path, bodies: dict[int, bytes], clients: list[int], duration: float,
               warmup: float) -> tuple[dict[tuple[int, int], dict[str, Any]], str, list[Any]]:
    with mlflow_serving(workdir) as (url, pgid, version):
        check = answers(url, bodies[max(bodies)])
        return measure(url, pgid, bodies, clients, duration, warmup), version, check


def run_cairn(workdir: Path, frame: Any, model: Any, bodies: dict[int, bytes], clients: list[int],
              duration: float, warmup: float, logging: bool) -> dict[str, Any]:
    out: dict[str, Any] = {"results": {}}
    with running(Platform(workdir / "platform")) as plat, Client(plat.gateway, plat.token) as client:
        with start_run(PROJECT, client=client, system_metrics=False, record_environment=False) as run:
            version = int(run.log_model(model, MODEL, input_example=frame.head(5))["version"])
        out["check"] = []
        for side, extra in (("cairn", ()), ("cairn batched", ("--max-batch", str(MAX_BATCH), "--max-wait-ms", "2"))):
            with cairn_serving(plat, workdir, "-p", PROJECT, f"{MODEL}/{version}", "--public", *extra) as (url, pgid):
                out["check"].append(answers(url, bodies[max(bodies)]))
                out["results"][side] = measure(url, pgid, bodies, clients, duration, warmup)
        if logging:
            out.update(run_logging(plat, client, workdir, version, bodies[1], max(clients), duration, warmup))
    return out


def run_logging(plat: Platform, client: Client, workdir: Path, version: int, body: bytes, clients: int,
                duration: float, warmup: float) -> dict[str, Any]:
    """Two replicas of two deployments of one version, sampling 0% and 100%, both up at once and
    measured in the order off, on, on, off so that a drift in the machine's load hits both alike."""
    deployments = Deployments(client)
    servers = {}
    with contextlib.ExitStack() as stack:
        for name, rate in (("logging-off", 0.0), ("logging-on", 1.0)):
            deployments.create(PROJECT, name, environment="dev", model=MODEL, version=version, replicas=0,
                               sample_rate=rate, batching={"max_batch": MAX_BATCH, "max_wait_ms": 2}, public=True)
            servers[name] = stack.enter_context(cairn_serving(plat, workdir, "--deployment", f"{PROJECT}/{name}"))
        runs: dict[str, list[dict[str, Any]]] = {name: [] for name in servers}
        for name in ("logging-off", "logging-on", "logging-on", "logging-off"):
            url, pgid = servers[name]
            runs[name].append(measure(url, pgid, {1: body}, [clients], duration, warmup)[(clients, 1)])
    out: dict[str, Any] = {}
    for name, cells in runs.items():
        out[name] = {key: statistics.fmean(cell[key] for cell in cells) for key in ("rps", "p99_ms", "srv_cpu")}
        out[f"{name}-logged"] = deployments.requests(PROJECT, name, since="1h", limit=1000)["count"]
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
        print(f"\ninference logging ({top} clients, 1 row, deployment mode, batching {MAX_BATCH}/2, mean of 2 runs each, "
              f"order off-on-on-off):\n  sample 100%: {on['rps']:,.0f} req/s, p99 {on['p99_ms']:.2f} ms, "
              f"server cpu {on['srv_cpu']:.0f}%\n  sample   0%: {off['rps']:,.0f} req/s, p99 {off['p99_ms']:.2f} ms, "
              f"server cpu {off['srv_cpu']:.0f}%\n  throughput on/off {on['rps'] / off['rps']:.2f} (target >= 0.90); "
              f"sampled requests readable from the log: on {c['logging-on-logged']}, off {c['logging-off-logged']} "
              f"(a page holds at most 1000)")


if __name__ == "__main__":
    main()
