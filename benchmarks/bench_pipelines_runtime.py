"""Pipelines at run time, Cairn beside Metaflow (issue 21's benchmarks):

- **overhead per step**: a linear pipeline of N no-op steps (default 20), run start to finish.
  Cairn: the pipelines service on its own platform with one real ``cairn agent``, each step a job
  whose command is ``true``; Metaflow: the same chain as a FlowSpec (``start``, N-2 steps,
  ``end``) run by its local runtime (``python flow.py run``) in a side venv with local datastore
  and metadata, offline. The steps do nothing, so a tool's time divided by N is its overhead per
  step. Both are run --repeat times, interleaved.
- **cached**: Cairn runs the same pipeline again with nothing changed: every step a cache hit;
  the target is < 2 s for the whole run.
- **push to first step**: a bare git repository whose ``post-receive`` hook posts a signed
  GitHub-format push to the gateway; time from ``git push`` starting to the first step's
  ``step.started``; p50 of --pushes pushes (target < 1 s).

    python benchmarks/bench_pipelines_runtime.py --metaflow-python /path/to/side-venv/bin/python
    python benchmarks/bench_pipelines_runtime.py --steps 20 --repeat 3 --pushes 10 --json

Make the side venv with ``python -m venv mf && mf/bin/pip install metaflow``.
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
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from bench_dispatch import start_agents  # noqa: E402

from platform_harness import Platform  # noqa: E402

PROJECT, QUEUE = "bench", "bench"


def cairn_pipeline(steps: int, name: str = "noop") -> str:
    """A linear pipeline of ``steps`` no-op job steps."""
    lines = [f"name: {name}", "steps:"]
    for i in range(steps):
        lines.append(f"  - id: s{i}")
        if i:
            lines.append(f"    needs: [s{i - 1}]")
        lines += ["    command: 'true'", f"    queue: {QUEUE}", "    resources: {cpus: 0.25, memory: 64Mi}"]
    return "\n".join(lines) + "\n"


def metaflow_flow(steps: int) -> str:
    """The same chain as a Metaflow flow: start, steps-2 middle steps, end."""
    names = ["start", *[f"s{i}" for i in range(1, steps - 1)], "end"]
    lines = ["from metaflow import FlowSpec, step", "", "", "class NoopFlow(FlowSpec):"]
    for i, name in enumerate(names):
        body = f"self.next(self.{names[i + 1]})" if i + 1 < len(names) else "pass"
        lines += ["    @step", f"    def {name}(self):", f"        {body}", ""]
    lines += ["", "if __name__ == '__main__':", "    NoopFlow()"]
    return "\n".join(lines) + "\n"


def run_metaflow(python: str, root: Path, steps: int) -> float:
    flow = root / "noop_flow.py"
    flow.write_text(metaflow_flow(steps))
    env = {**os.environ, "METAFLOW_HOME": str(root / "mf-home"), "USERNAME": "bench", "USER": "bench",
           "METAFLOW_DEFAULT_DATASTORE": "local", "METAFLOW_DEFAULT_METADATA": "local",
           "METAFLOW_DATASTORE_SYSROOT_LOCAL": str(root / "mf-data")}
    started = time.perf_counter()
    subprocess.run([python, str(flow), "--quiet", "run"], cwd=root, env=env, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return time.perf_counter() - started


def run_cairn(http: httpx.Client, text: str, *, no_cache: bool) -> tuple[float, dict[str, Any]]:
    started = time.perf_counter()
    resp = http.post(f"/api/v1/pipelines/projects/{PROJECT}/runs",
                     json={"pipeline": text, "params": {}, "no_cache": no_cache})
    resp.raise_for_status()
    run_id = resp.json()["id"]
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        view = http.get(f"/api/v1/pipelines/projects/{PROJECT}/runs/{run_id}").json()
        if view["status"] != "running":
            if view["status"] != "succeeded":
                raise RuntimeError(f"run {run_id} ended {view['status']}: {view.get('outcome')}")
            return time.perf_counter() - started, view
        time.sleep(0.01)
    raise RuntimeError(f"run {run_id} did not finish in 600 s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--metaflow-python", default="", help="python of a venv with metaflow (empty: Cairn only)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    result: dict[str, Any] = {"machine": f"{pyplatform.machine()} {os.cpu_count()} cpus", "steps": args.steps}
    with tempfile.TemporaryDirectory(prefix="cairn-bench-pipelines-") as tmp:
        root = Path(tmp)
        plat = Platform(root / "platform", env={"CAIRN_RATE_LIMIT": "0"}).start()
        agents: list[subprocess.Popen[bytes]] = []
        try:
            with httpx.Client(base_url=plat.gateway, headers=plat.headers, timeout=60) as http:
                http.post("/api/v1/registry/projects", json={"name": PROJECT}).raise_for_status()
                agents = start_agents(plat, root, 1, QUEUE)
                text = cairn_pipeline(args.steps)
                run_cairn(http, cairn_pipeline(2, "warmup"), no_cache=True)  # first job and run: imports, caches
                cairn_s, metaflow_s, cached_s = [], [], []
                for _ in range(args.repeat):
                    cairn_s.append(run_cairn(http, text, no_cache=True)[0])
                    if args.metaflow_python:
                        metaflow_s.append(run_metaflow(args.metaflow_python, root, args.steps))
                for _ in range(args.repeat):
                    seconds, view = run_cairn(http, text, no_cache=False)
                    states = {s["state"] for s in view["steps"]}
                    if states != {"cached"}:
                        raise RuntimeError(f"an unchanged re-run was not all cached: {sorted(states)}")
                    cached_s.append(seconds)
            result["load"] = round(os.getloadavg()[0], 1)
            result["cairn_run_s"] = [round(s, 3) for s in cairn_s]
            result["cairn_per_step_ms"] = round(statistics.median(cairn_s) / args.steps * 1000, 1)
            result["cached_run_s"] = [round(s, 3) for s in cached_s]
            if metaflow_s:
                result["metaflow_run_s"] = [round(s, 3) for s in metaflow_s]
                result["metaflow_per_step_ms"] = round(statistics.median(metaflow_s) / args.steps * 1000, 1)
                result["ratio_metaflow_over_cairn"] = round(statistics.median(metaflow_s) / statistics.median(cairn_s), 2)
        finally:
            for proc in agents:
                proc.terminate()
            for proc in agents:
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    proc.kill()
            plat.stop()
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"{result['machine']}, load {result['load']}: a linear pipeline of {args.steps} no-op steps")
    print(f"  cairn: {result['cairn_run_s']} s per run, {result['cairn_per_step_ms']} ms per step")
    if "metaflow_run_s" in result:
        print(f"  metaflow: {result['metaflow_run_s']} s per run, {result['metaflow_per_step_ms']} ms per step")
        print(f"  ratio (metaflow / cairn overhead per step): {result['ratio_metaflow_over_cairn']} (target >= 3)")
    print(f"  unchanged re-run, every step cached: {result['cached_run_s']} s (target < 2 s)")


if __name__ == "__main__":
    main()
