"""Dispatch benchmark: how fast no-op jobs go from submit to a started process.

Starts its own platform (nats-server, services, gateway; like the tests) and --agents real
``cairn agent`` processes on this machine, then submits --jobs no-op jobs (``true``, no code,
0.25 CPU each), either from --clients concurrent submitters (closed loop: each sends its next
job when the last is answered) or at a fixed --rate (open loop). For every job, latency = the
agent's process start time (``job.started``) minus the moment its submit began (open loop: was
due); throughput = jobs / (last start - first submit). Targets from the issue: >= 100 jobs/s,
p50 < 200 ms.

    python benchmarks/bench_dispatch.py                      # 1000 jobs, 4 agents, 16 clients
    python benchmarks/bench_dispatch.py --rate 100 --jobs 3000   # latency at 100 jobs/s offered
    python benchmarks/bench_dispatch.py --jobs 300 --json
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

import aiohttp
import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from platform_harness import Platform  # noqa: E402


def start_agents(plat: Platform, root: Path, count: int, queue: str) -> list[subprocess.Popen[bytes]]:
    procs = []
    for i in range(count):
        log = open(root / f"agent-{i}.log", "ab")  # noqa: SIM115 - the child owns it
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "cairn.cli.main", "--url", plat.gateway, "agent", "--queue", queue,
             "--cpus", "8", "--memory", "8Gi", "--gpus", "0", "--name", f"bench-{i}", "--work-dir", str(root / f"a{i}"),
             "--token", plat.token, "--system-metrics-interval", "0"],
            stdout=log, stderr=log, env={**os.environ, "CAIRN_LOG_LEVEL": "warning"}))
    with httpx.Client(base_url=plat.gateway, headers=plat.headers, timeout=10) as http:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            live = [a for a in http.get("/api/v1/scheduler/agents").json()["agents"] if a["live"]]
            if len(live) >= count:
                return procs
            time.sleep(0.2)
    raise RuntimeError("agents did not register")


def stop_agents(procs: list[subprocess.Popen[bytes]]) -> None:
    """SIGTERM every agent, then wait (SIGKILL one that is still up after 20 s)."""
    for proc in procs:
        proc.terminate()
    for proc in procs:
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


async def submit_jobs(url: str, headers: dict[str, str], spec: dict[str, Any],
                      args: argparse.Namespace) -> tuple[list[tuple[str, float]], dict[str, float]]:
    """Submit ``args.jobs`` jobs; returns (job id, when its submit began) and when each was answered.

    Closed loop (default): ``args.clients`` submitters, each sending its next job when the last one
    is answered. Open loop (``--rate R``): a job every 1/R s whatever the answers, its latency
    counted from when it was due (so a slow answer cannot hide the jobs queued behind it).
    One aiohttp session on one event loop: the load generator shares this machine's CPUs with the
    platform, so it should take as little of them as it can.
    """
    submitted: list[tuple[str, float]] = []
    answered: dict[str, float] = {}
    connector = aiohttp.TCPConnector(limit=0 if args.rate else args.clients)
    async with aiohttp.ClientSession(headers=headers, connector=connector,
                                     timeout=aiohttp.ClientTimeout(total=120)) as session:
        async def submit(n: int, began: float) -> None:
            async with session.post(url, json=spec, headers={"Idempotency-Key": f"bench-{n}"}) as resp:
                body = await resp.json()
                if resp.status != 201:
                    raise RuntimeError(f"submit {n} answered {resp.status}: {body}")
            answered[body["id"]] = time.time()
            submitted.append((body["id"], began))

        if args.rate:
            loop = asyncio.get_running_loop()
            start, wall = loop.time(), time.time()
            tasks = []
            for n in range(args.jobs):
                due = n / args.rate
                await asyncio.sleep(max(0.0, start + due - loop.time()))
                tasks.append(asyncio.create_task(submit(n, wall + due)))
            await asyncio.gather(*tasks)
        else:
            numbers = iter(range(args.jobs))

            async def submitter() -> None:
                for n in numbers:
                    await submit(n, time.time())

            await asyncio.gather(*(submitter() for _ in range(args.clients)))
    return submitted, answered


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--agents", type=int, default=4)
    parser.add_argument("--clients", type=int, default=16, help="concurrent submitters (closed loop)")
    parser.add_argument("--rate", type=float, default=0.0,
                        help="open loop instead: submit this many jobs per second, whatever the answers")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="cairn-bench-dispatch-") as tmp:
        root = Path(tmp)
        plat = Platform(root / "platform", env={"CAIRN_RATE_LIMIT": "0"}).start()
        agents: list[subprocess.Popen[bytes]] = []
        try:
            project, queue = "bench", "bench"
            with httpx.Client(base_url=plat.gateway, headers=plat.headers, timeout=60) as http:
                http.post("/api/v1/registry/projects", json={"name": project}).raise_for_status()
            agents = start_agents(plat, root, args.agents, queue)
            spec = {"command": ["true"], "code": None, "queue": queue, "resources": {"cpus": 0.25}}
            url = f"{plat.gateway}/api/v1/scheduler/projects/{project}/jobs"
            began_all = time.time()
            submitted, answered = asyncio.run(submit_jobs(url, plat.headers, spec, args))
            submit_rate = args.jobs / (time.time() - began_all)
            started: dict[str, float] = {}
            with httpx.Client(base_url=plat.gateway, headers=plat.headers, timeout=60) as http:
                deadline = time.monotonic() + 600
                for job_id, _ in submitted:
                    while time.monotonic() < deadline:
                        job = http.get(f"/api/v1/scheduler/projects/{project}/jobs/{job_id}").json()
                        starts = [h["data"]["started_at"] for h in job["history"] if h["type"] == "job.started"]
                        if starts and job["status"] in ("succeeded", "failed", "cancelled"):
                            started[job_id] = starts[0]
                            break
                        time.sleep(0.05)
            latencies = [(started[j] - began) * 1000 for j, began in submitted if j in started]
            after_answer = [(started[j] - answered[j]) * 1000 for j, _ in submitted if j in started]
            span = max(started.values()) - min(b for _, b in submitted)
            result = {
                "machine": f"{pyplatform.machine()} {os.cpu_count()} cpus, load {os.getloadavg()[0]:.1f}",
                "jobs": args.jobs, "agents": args.agents,
                "load": f"open loop, {args.rate:g} submits/s" if args.rate else f"closed loop, {args.clients} submitters",
                "started": len(started),
                "jobs_per_s": round(len(started) / span, 1), "submits_per_s": round(submit_rate, 1),
                "submit_to_started_ms": {"p50": round(statistics.median(latencies), 1),
                                         "p99": round(percentile(latencies, 0.99), 1),
                                         "max": round(max(latencies), 1)},
                "submit_answered_to_started_ms": {"p50": round(statistics.median(after_answer), 1),
                                                  "p99": round(percentile(after_answer, 0.99), 1)},
            }
        finally:
            stop_agents(agents)
            plat.stop()
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"{result['machine']}: {result['jobs']} no-op jobs, {result['agents']} agents, {result['load']}")
        print(f"  throughput submit->started: {result['jobs_per_s']} jobs/s "
              f"(submits alone: {result['submits_per_s']}/s)")
        lat = result["submit_to_started_ms"]
        print(f"  latency submit->started: p50 {lat['p50']} ms, p99 {lat['p99']} ms, max {lat['max']} ms")
        after = result["submit_answered_to_started_ms"]
        print(f"  of which after the submit was answered (queue, dispatch, spawn): p50 {after['p50']} ms, "
              f"p99 {after['p99']} ms")


if __name__ == "__main__":
    main()
