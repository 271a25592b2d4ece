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

The push measurement times ``git push`` itself too (the hook runs inside it): the clock starts
before the push command and stops at the first step's ``step.started`` (the event's time, this
machine's clock).

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
from bench_dispatch import start_agents, stop_agents  # noqa: E402

from platform_harness import Platform  # noqa: E402

PROJECT, QUEUE = "bench", "bench"
SECRET = "bench-hook-secret-0123456789"
HOOK = """#!{python}
import hashlib, hmac, json, sys, urllib.request
for line in sys.stdin:
    old, new, ref = line.split()
    body = json.dumps({{"ref": ref, "before": old, "after": new, "head_commit": {{"id": new}},
                       "repository": {{"full_name": "bench/ml", "clone_url": {bare!r}}}, "pusher": {{"name": "bench"}},
                       "commits": [{{"id": new, "added": [], "modified": ["train.py"], "removed": []}}]}}).encode()
    signature = "sha256=" + hmac.new({secret!r}.encode(), body, hashlib.sha256).hexdigest()
    request = urllib.request.Request({url!r}, data=body, method="POST", headers={{
        "X-GitHub-Event": "push", "X-GitHub-Delivery": new, "X-Hub-Signature-256": signature,
        "Content-Type": "application/json"}})
    with urllib.request.urlopen(request, timeout=60) as resp:
        print("HOOK", resp.status)
"""


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


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", "-c", "user.name=bench", "-c", "user.email=bench@cairn.invalid", *args], cwd=cwd,
                          check=True, capture_output=True, text=True).stdout


def push_to_first_step(http: httpx.Client, gateway: str, root: Path, pushes: int) -> list[float]:
    """Seconds from ``git push`` to the first step's ``step.started``, one per push."""
    bare, work = root / "ml.git", root / "work"
    git(root, "init", "--bare", "-q", str(bare))
    git(root, "clone", "-q", str(bare), str(work))
    hook = bare / "hooks" / "post-receive"
    hook.write_text(HOOK.format(python=sys.executable, bare=str(bare), secret=SECRET,
                                url=f"{gateway}/api/v1/pipelines/hooks/git"))
    hook.chmod(0o755)
    text = cairn_pipeline(1, "pushed").replace("steps:", "on: {push: {branches: [main]}}\nsteps:")
    (work / "cairn").mkdir()
    (work / "cairn" / "pipeline.yaml").write_text(text)
    http.post(f"/api/v1/pipelines/projects/{PROJECT}/definitions", json={
        "definition": text, "repo": {"full_name": "bench/ml", "clone_url": str(bare)},
        "hook": {"kind": "github", "secret": SECRET}}).raise_for_status()
    latencies = []
    for i in range(pushes + 1):  # the first push warms the mirror (a clone) and is not counted
        (work / "train.py").write_text(f"print({i})\n")
        git(work, "add", "-A")
        git(work, "commit", "-q", "-m", f"change {i}")
        sha = git(work, "rev-parse", "HEAD").strip()
        began = time.time()
        git(work, "push", "-q", "origin", "HEAD:refs/heads/main")
        deadline = time.monotonic() + 60
        started = None
        while started is None and time.monotonic() < deadline:
            runs = http.get(f"/api/v1/pipelines/projects/{PROJECT}/runs", params={"pipeline": "pushed"}).json()["runs"]
            for run in runs:
                view = http.get(f"/api/v1/pipelines/projects/{PROJECT}/runs/{run['id']}").json()
                if view["trigger"].get("commit") == sha and view["steps"][0]["started_at"]:
                    started = view["steps"][0]["started_at"]
            time.sleep(0.005)
        if started is None:
            raise RuntimeError(f"push {i} ({sha}) started no step in 60 s")
        if i:
            latencies.append(_epoch(started) - began)
    return latencies


def _epoch(iso: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--metaflow-python", default="", help="python of a venv with metaflow (empty: Cairn only)")
    parser.add_argument("--pushes", type=int, default=10, help="pushes timed to their first step (0: none)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    result: dict[str, Any] = {"machine": f"{pyplatform.machine()} {os.cpu_count()} cpus", "steps": args.steps}
    with tempfile.TemporaryDirectory(prefix="cairn-bench-pipelines-") as tmp:
        root = Path(tmp)
        plat = Platform(root / "platform", env={"CAIRN_RATE_LIMIT": "0"},
                        service_env={"pipelines": {"CAIRN_PIPELINES_ALLOW_LOCAL_REPOS": "true"}}).start()
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
                pushed = push_to_first_step(http, plat.gateway, root, args.pushes) if args.pushes else []
            result["load"] = round(os.getloadavg()[0], 1)
            result["cairn_run_s"] = [round(s, 3) for s in cairn_s]
            result["cairn_per_step_ms"] = round(statistics.median(cairn_s) / args.steps * 1000, 1)
            result["cached_run_s"] = [round(s, 3) for s in cached_s]
            if pushed:
                result["push_to_first_step_ms"] = {"p50": round(statistics.median(pushed) * 1000, 1),
                                                   "max": round(max(pushed) * 1000, 1), "pushes": len(pushed)}
            if metaflow_s:
                result["metaflow_run_s"] = [round(s, 3) for s in metaflow_s]
                result["metaflow_per_step_ms"] = round(statistics.median(metaflow_s) / args.steps * 1000, 1)
                result["ratio_metaflow_over_cairn"] = round(statistics.median(metaflow_s) / statistics.median(cairn_s), 2)
        finally:
            stop_agents(agents)
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
    if "push_to_first_step_ms" in result:
        pushed = result["push_to_first_step_ms"]
        print(f"  git push -> first step started: p50 {pushed['p50']} ms, max {pushed['max']} ms over "
              f"{pushed['pushes']} pushes (target p50 < 1 s)")


if __name__ == "__main__":
    main()
