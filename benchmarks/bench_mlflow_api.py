"""The same MLflow client workload against MLflow's own tracking server and Cairn's gateway.

Workload (benchmarks/mlflow_workload.py, plain MLflow client code run with the side venv's python
for both targets, so the client is identical): 1 run with 100 params (one log_batch); 10 metrics x
10,000 steps with log_batch (1,000 metrics per call, MLflow's limit) and one metric's history read
back; 20 artifacts of 1 MiB uploaded with log_artifact (three rounds of 20 new files, the median
round reported) and the first 20 downloaded again; 1,000 runs created
with 5 params and 5 metrics each; search_runs over them with a metric and a param filter, ordered
by a metric (best of 3). Then, with both servers up, the upload step once more in one window of
time: ten rounds of 20 new files, MLflow and Cairn in turn, who goes first alternating, the median
round per server reported (this VM's speed drifts by tens of percent over minutes, and a sequential
run puts each server in a different period).

MLflow: ``mlflow server`` from the side venv (benchmarks/mlflow_side.py), SQLite backend store,
artifacts proxied from a local folder, 2 workers. Cairn: nats-server, the services and the gateway
as the tests start them (tests/platform_harness.py), rate limit off, site-admin token. MLflow's
server is measured first, alone; it stays up, idle, while Cairn is measured.
Usage: python benchmarks/bench_mlflow_api.py [--search-runs 1000] [--steps 10000]
"""

from __future__ import annotations

import argparse
import json
import os
import platform as pyplatform
import statistics
import subprocess
import sys
import tempfile
from datetime import date
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))
sys.path.insert(0, str(HERE))
from mlflow_side import mlflow_server  # noqa: E402

from platform_harness import Platform  # noqa: E402

STEPS = [  # (key, label, higher is better)
    ("create_run_s", "create run (s)", False),
    ("log_100_params_s", "log 100 params, one log_batch (s)", False),
    ("metric_points_per_s", "log metrics, 10 x 10,000 steps (points/s)", True),
    ("metric_history_s", "read one metric's history, 10,000 points (s)", False),
    ("upload_mb_per_s", "upload 20 x 1 MiB artifacts, median of 3 rounds (MB/s)", True),
    ("alternate_upload_mb_per_s", "  the same, 10 rounds alternating between the servers (MB/s)", True),
    ("download_mb_per_s", "download them (MB/s)", True),
    ("create_runs_per_s", "create runs with 5 params + 5 metrics (runs/s)", True),
    ("search_runs_s", "search_runs over 1,000 runs, filter + order (s)", False),
    ("search_http_s", "  of which the server's answer (plain HTTP, s)", False),
    ("search_parse_s", "  of which the client parsing it (s)", False),
    ("search_response_bytes", "  answer size (bytes)", False),
]


def workload(python: Path, uri: str, token: str | None, args: argparse.Namespace) -> dict[str, float]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env.update(MLFLOW_TRACKING_URI=uri, BENCH_STEPS=str(args.steps), BENCH_SEARCH_RUNS=str(args.search_runs),
               GIT_PYTHON_REFRESH="quiet")
    if token:
        env["MLFLOW_TRACKING_TOKEN"] = token
    proc = subprocess.run([str(python), str(HERE / "mlflow_workload.py")], env=env, capture_output=True,
                          text=True, timeout=3600)
    if proc.returncode != 0:
        raise RuntimeError(f"workload failed against {uri}:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def alternating_uploads(python: Path, mlflow_uri: str, cairn_uri: str, token: str) -> dict[str, list[float]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env.update(BENCH_MLFLOW_URI=mlflow_uri, BENCH_CAIRN_URI=cairn_uri, BENCH_CAIRN_TOKEN=token,
               GIT_PYTHON_REFRESH="quiet")
    proc = subprocess.run([str(python), str(HERE / "mlflow_workload.py"), "alternate"], env=env,
                          capture_output=True, text=True, timeout=1800)
    if proc.returncode != 0:
        raise RuntimeError(f"alternating uploads failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--search-runs", type=int, default=1000)
    parser.add_argument("--steps", type=int, default=10_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="cairn-bench-mlflow-") as tmp:
        root = Path(tmp)
        with mlflow_server(root / "mlflow") as server:
            print(f"MLflow {server.version} at {server.url}", file=sys.stderr, flush=True)
            theirs = workload(server.python, server.url, None, args)
            plat = Platform(root / "cairn").start()  # MLflow's server stays up (idle) from here on
            try:
                print(f"Cairn at {plat.gateway}", file=sys.stderr, flush=True)
                ours = workload(server.python, plat.gateway, plat.token, args)
                print("uploads, rounds alternating between the two servers", file=sys.stderr, flush=True)
                rounds = alternating_uploads(server.python, server.url, plat.gateway, plat.token)
            finally:
                plat.stop()
    for side, mine in (("mlflow", theirs), ("cairn", ours)):
        mine["alternate_rounds_s"] = rounds[side]
        mine["alternate_upload_mb_per_s"] = 20 * 1.048576 / statistics.median(rounds[side])
    print(f"{date.today()} {pyplatform.machine()} {os.cpu_count()} CPUs, MLflow {server.version}; "
          f"search found {ours['search_found']} (Cairn) / {theirs['search_found']} (MLflow) runs\n")
    print("| step | MLflow | Cairn | Cairn faster by |")
    print("| --- | ---: | ---: | ---: |")
    for key, label, higher in STEPS:
        ratio = ours[key] / theirs[key] if higher else theirs[key] / ours[key]
        digits = 0 if key.endswith("bytes") else 3
        print(f"| {label} | {theirs[key]:,.{digits}f} | {ours[key]:,.{digits}f} | {ratio:.2f}x |")
    print("\n" + json.dumps({"mlflow": theirs, "cairn": ours}))


if __name__ == "__main__":
    main()
