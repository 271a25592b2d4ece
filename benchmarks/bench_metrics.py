"""Metrics benchmark: Cairn side by side with MLflow's tracking server, same workload, one run.

Workload (issue 5): log 1M points (10 keys x 100k steps) with each tool's fastest documented client
path, fetch one key's full history (100k points), fetch it downsampled to 1,000 points, and measure
bytes of storage per point. Cairn also logs one 1M-point key and fetches it downsampled to 1,000
points (target < 50 ms).

- MLflow (side venv, see mlflow_side.py; tracking server with a SQLite store on loopback):
  ``MlflowClient.log_batch`` with 1,000 metrics per call, ``get_metric_history``, and the
  ``get-history-bulk-interval`` route with ``max_results=1000`` (the sampled history its UI uses).
- Cairn (its own nats-server, services and gateway, like the tests): the SDK's ``run.log_metrics``
  (background batches of 5,000 points as Arrow IPC) until ``run.flush()`` returns, i.e. every point
  is durable in the metrics stream; then ``metric_history`` full and with ``points=1000``.

Usage: python benchmarks/bench_metrics.py [--steps 100000] [--keys 10] [--long 1000000]
       [--repeat 5] [--no-mlflow]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform as pyplatform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import nats

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from mlflow_side import mlflow_server  # noqa: E402

import cairn  # noqa: E402
from cairn.services.metrics.writer import METRICS_STREAM  # noqa: E402

from platform_harness import Platform  # noqa: E402

MLFLOW_CLIENT = r'''
import json, sys, time
import requests
from mlflow import MlflowClient
from mlflow.entities import Metric

url, keys, steps, repeat = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
client = MlflowClient(tracking_uri=url)
exp = client.create_experiment(f"bench-{time.time_ns()}")
run_id = client.create_run(exp).info.run_id
per_call = 1000
rows = [(f"k{k}", step) for step in range(steps) for k in range(keys)]
now = int(time.time() * 1000)
start = time.perf_counter()
for i in range(0, len(rows), per_call):
    client.log_batch(run_id, metrics=[Metric(key, float(step) * 0.5, now, step) for key, step in rows[i:i + per_call]])
ingest = time.perf_counter() - start
full = []
for _ in range(max(1, repeat // 2)):
    start = time.perf_counter()
    history = client.get_metric_history(run_id, "k0")
    full.append(time.perf_counter() - start)
assert len(history) == steps, len(history)
sampled, count = [], None
with requests.Session() as http:
    for _ in range(repeat):
        start = time.perf_counter()
        resp = http.get(f"{url}/ajax-api/2.0/mlflow/metrics/get-history-bulk-interval",
                        params={"run_ids": run_id, "metric_key": "k0", "max_results": 1000}, timeout=600)
        resp.raise_for_status()
        count = len(resp.json().get("metrics", []))
        sampled.append(time.perf_counter() - start)
print(json.dumps({"ingest_s": ingest, "points": len(rows), "full_s": full, "full_points": len(history),
                  "sampled_s": sampled, "sampled_points": count}))
'''


def dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def run_mlflow(workdir: Path, keys: int, steps: int, repeat: int) -> dict[str, Any]:
    script = workdir / "mlflow_client.py"
    workdir.mkdir(parents=True, exist_ok=True)
    script.write_text(MLFLOW_CLIENT)
    with mlflow_server(workdir / "server") as server:
        out = subprocess.run([str(server.python), str(script), server.url, str(keys), str(steps), str(repeat)],
                             capture_output=True, text=True, check=False)
        if out.returncode != 0:
            raise RuntimeError(f"mlflow client failed:\n{out.stderr[-3000:]}")
        result = json.loads(out.stdout.strip().splitlines()[-1])
        result["version"] = server.version
        db = server.workdir / "mlflow.db"
        result["storage_bytes"] = sum(p.stat().st_size for p in db.parent.glob("mlflow.db*"))
    return result


async def stream_state(nats_url: str) -> tuple[int, int]:
    """Messages and bytes left in the metrics stream (written batches are deleted)."""
    nc = await nats.connect(nats_url)
    try:
        state = (await nc.jetstream().stream_info(METRICS_STREAM)).state
        return int(state.messages), int(state.bytes)
    finally:
        await nc.close()


def wait_written(plat: Platform, timeout: float = 600) -> float:
    """Seconds until the metrics writer has every acked point in Parquet."""
    start = time.perf_counter()
    while httpx.get(f"{plat.service_url('metrics')}/healthz", timeout=10).json()["tail_points"]:
        if time.perf_counter() - start > timeout:
            raise TimeoutError("the metrics writer did not catch up")
        time.sleep(0.02)
    return time.perf_counter() - start


def timed(repeat: int, call: Any) -> tuple[list[float], Any]:
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = call()
        times.append(time.perf_counter() - start)
    return times, result


def run_cairn(root: Path, keys: int, steps: int, long_points: int, repeat: int) -> dict[str, Any]:
    plat = Platform(root).start()
    out: dict[str, Any] = {}
    try:
        with cairn.Client(plat.gateway, token=plat.token) as client:
            with cairn.start_run(project="bench", client=client, system_metrics=False) as run:
                names = [f"k{k}" for k in range(keys)]
                start = time.perf_counter()
                for step in range(steps):
                    value = step * 0.5
                    run.log_metrics(dict.fromkeys(names, value), step=step)
                logged = time.perf_counter() - start
                assert run.flush(600), run.metrics.last_error
                out["ingest_s"] = time.perf_counter() - start
                out["log_calls_s"] = logged
                out["written_after_s"] = wait_written(plat)
                out["points"] = keys * steps
            run_id = run.id
            out["full_s"], body = timed(repeat, lambda: client.metric_history("bench", run_id, "k0"))
            assert body["total"] == steps and len(body["values"]) == steps
            out["sampled_s"], body = timed(repeat, lambda: client.metric_history("bench", run_id, "k0", points=1000))
            out["sampled_points"] = len(body["steps"])
            folder = plat.root / "data" / "metrics" / "bench" / run_id
            out["storage_bytes"] = dir_bytes(folder)
            out["stream_messages"], out["stream_bytes"] = asyncio.run(stream_state(plat.nats_url))
            if long_points:
                with cairn.start_run(project="bench", client=client, system_metrics=False) as long_run:
                    start = time.perf_counter()
                    for step in range(long_points):
                        long_run.log_metric("loss", 1.0 / (step + 1), step=step)
                    assert long_run.flush(600), long_run.metrics.last_error
                    out["long_ingest_s"] = time.perf_counter() - start
                wait_written(plat)
                for method in ("minmax", "lttb"):
                    times, body = timed(repeat * 2, lambda m=method: client.metric_history(
                        "bench", long_run.id, "loss", points=1000, method=m))
                    assert body["total"] == long_points
                    out[f"long_{method}_s"] = times
                out["long_storage_bytes"] = dir_bytes(plat.root / "data" / "metrics" / "bench" / long_run.id)
    finally:
        plat.stop()
    return out


def print_cairn(c: dict[str, Any], steps: int, long_points: int) -> None:
    best = min
    c_rate = c["points"] / c["ingest_s"]
    print(f"\ncairn: ingest {c['points']:,} points in {c['ingest_s']:.2f} s = {c_rate:,.0f} points/s "
          f"(log calls {c['log_calls_s']:.2f} s; all in Parquet {c['written_after_s']:.2f} s later)")
    print(f"cairn: full history {steps:,} points best {best(c['full_s']) * 1e3:.0f} ms "
          f"(median {statistics.median(c['full_s']) * 1e3:.0f} ms)")
    print(f"cairn: downsampled to {c['sampled_points']} points best {best(c['sampled_s']) * 1e3:.1f} ms")
    print(f"cairn: storage {c['storage_bytes'] / c['points']:.1f} bytes/point (Parquet, LZ4); "
          f"metrics stream after writes: {c['stream_messages']} messages, {c['stream_bytes']:,} bytes")
    if long_points:
        print(f"cairn: {long_points:,}-point key: ingest {long_points / c['long_ingest_s']:,.0f} points/s; "
              f"1,000-point minmax best {best(c['long_minmax_s']) * 1e3:.1f} ms "
              f"(median {statistics.median(c['long_minmax_s']) * 1e3:.1f}), lttb best "
              f"{best(c['long_lttb_s']) * 1e3:.1f} ms (median {statistics.median(c['long_lttb_s']) * 1e3:.1f}); "
              f"storage {c['long_storage_bytes'] / long_points:.1f} bytes/point")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--keys", type=int, default=10)
    parser.add_argument("--steps", type=int, default=100_000)
    parser.add_argument("--long", type=int, default=1_000_000, help="points in the one-key series (0: skip)")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--no-mlflow", action="store_true")
    args = parser.parse_args()
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    print(f"machine: {pyplatform.machine()} {os.cpu_count()} cpus, python {pyplatform.python_version()}, "
          f"load {os.getloadavg()[0]:.1f}, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    with tempfile.TemporaryDirectory(prefix="cairn-bench-metrics-") as tmp:
        c = run_cairn(Path(tmp) / "cairn", args.keys, args.steps, args.long, args.repeat)
        print_cairn(c, args.steps, args.long)
        m = None if args.no_mlflow else run_mlflow(Path(tmp) / "mlflow", args.keys, args.steps, args.repeat)
    best = min
    c_rate = c["points"] / c["ingest_s"]
    if m is None:
        return
    m_rate = m["points"] / m["ingest_s"]
    print(f"\nmlflow {m['version']}: ingest {m_rate:,.0f} points/s (log_batch, 1,000 per call); full history "
          f"best {best(m['full_s']):.2f} s; bulk-interval max_results=1000 -> {m['sampled_points']} points "
          f"best {best(m['sampled_s']) * 1e3:.0f} ms; storage {m['storage_bytes'] / m['points']:.0f} bytes/point")
    print("\nratios (cairn vs mlflow; targets: ingest >= 20x, full history >= 10x):")
    print(f"  ingest points/s     {c_rate / m_rate:8.1f}x")
    print(f"  full history        {best(m['full_s']) / best(c['full_s']):8.1f}x faster")
    print(f"  downsampled fetch   {best(m['sampled_s']) / best(c['sampled_s']):8.1f}x faster")
    print(f"  storage per point   {m['storage_bytes'] / m['points'] / (c['storage_bytes'] / c['points']):8.1f}x smaller")


if __name__ == "__main__":
    main()
