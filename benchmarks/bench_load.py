"""Many concurrent clients of a mixed load against a real ``cairn up``: errors, latency, memory.

Why: single-client benchmarks hide what breaks under concurrency (503s from a connection a
service closed while the gateway reused it, disconnects, memory that grows with traffic). This
starts ``cairn up`` on loopback (own data dir, free ports, rate limit off through
``CAIRN_RATE_LIMIT=0`` and the site-admin token it writes), then runs ``--clients`` virtual users
(asyncio + httpx, one connection pool each) for ``--seconds``, each pausing up to ``--think-s``
between requests (0: none; pauses leave pooled connections idle, which is where closing races are). Each user repeats a mix of get_run,
search_runs, a 500-point metric batch, set tag, a small artifact upload (16 KiB, new bytes) and
download. It prints errors by kind (HTTP status or exception class) per operation, latency
percentiles per operation and overall, and each process's VmRSS (from /proc/<pid>/status) every
``--sample-s`` seconds, with the load average at start and end.

Usage: python benchmarks/bench_load.py [--clients 64] [--seconds 300] [--sample-s 15] [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from pathlib import Path

import httpx

from cairn.core.fingerprint import blake3
from cairn.protocol import ARROW_STREAM
from cairn.sdk.metrics import _encode

MIX = [("get_run", 30), ("search", 12), ("log_metrics", 20), ("set_tag", 18), ("upload", 10), ("download", 10)]
SMALL_BLOB = 16 << 10


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def proc_status(pid: int, field: str) -> int | None:
    """One number from /proc/<pid>/status (``VmRSS`` in KiB, ``Threads``); None once it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def start_cairn(data_dir: Path, log_path: Path) -> tuple[subprocess.Popen[bytes], dict]:
    """``cairn up`` with free ports and no rate limit; returns it and its state.json once healthy."""
    env = {**os.environ, "CAIRN_RATE_LIMIT": "0"}
    log = log_path.open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "cairn.cli.main", "up", "--data-dir", str(data_dir),
                             "--port", "0", "--nats-port", "0"], env=env, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + float(os.environ.get("CAIRN_TEST_START_TIMEOUT_S", "180"))
    state_file = data_dir / "run" / "state.json"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"cairn up exited ({proc.returncode}); see {log_path}")
        if b"Cairn is up" in log_path.read_bytes() and state_file.exists():
            return proc, json.loads(state_file.read_text())
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    raise SystemExit(f"cairn up did not become healthy in time; see {log_path}")


class Load:
    """The virtual users and what they saw."""

    def __init__(self, url: str, token: str, project: str, think_s: float = 0.0) -> None:
        self.url, self.token, self.project, self.think_s = url, token, project, think_s
        self.latency: dict[str, list[float]] = defaultdict(list)
        self.warm_after = 0.0  # monotonic time after which latencies also count as "warm"
        self.warm: list[float] = []
        self.errors: dict[str, Counter[str]] = defaultdict(Counter)
        self.runs: list[str] = []
        self.blobs: list[str] = []

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.url, headers={"Authorization": f"Bearer {self.token}"},
                                 timeout=httpx.Timeout(30.0))

    async def setup(self, runs: int) -> None:
        async with self.client() as http:
            for i in range(runs):
                resp = await http.post(f"/api/v1/registry/projects/{self.project}/runs/start",
                                       json={"experiment": "load", "name": f"r{i}", "params": {"i": i}},
                                       headers={"Idempotency-Key": uuid.uuid4().hex})
                resp.raise_for_status()
                self.runs.append(resp.json()["id"])
            for _ in range(4):
                self.blobs.append(await self._upload(http))

    async def _upload(self, http: httpx.AsyncClient) -> str:
        data = os.urandom(SMALL_BLOB)
        digest = blake3(data).hex()
        resp = await http.put(f"/api/v1/artifacts/projects/{self.project}/blobs/{digest}", content=data,
                              headers={"Content-Type": "application/octet-stream"})
        resp.raise_for_status()
        return digest

    async def one(self, http: httpx.AsyncClient, op: str, rng: random.Random) -> httpx.Response:
        p, run = self.project, rng.choice(self.runs)
        base = f"/api/v1/registry/projects/{p}"
        if op == "get_run":
            return await http.get(f"{base}/runs/{run}")
        if op == "search":
            return await http.post(f"{base}/runs/search", json={"filter": "params.i < 10", "page_size": 20})
        if op == "set_tag":
            return await http.put(f"{base}/runs/{run}/tags/k{rng.randrange(8)}", json={"value": str(rng.random())},
                                  headers={"Idempotency-Key": uuid.uuid4().hex})
        if op == "log_metrics":
            now, step = time.time(), rng.randrange(1 << 30)
            body = _encode([("loss", rng.random(), step + i, now) for i in range(500)])
            return await http.post(f"/api/v1/metrics/projects/{p}/runs/{run}/metrics", content=body,
                                   params={"batch_id": uuid.uuid4().hex}, headers={"Content-Type": ARROW_STREAM})
        if op == "upload":
            data = os.urandom(SMALL_BLOB)
            resp = await http.put(f"/api/v1/artifacts/projects/{p}/blobs/{blake3(data).hex()}", content=data,
                                  headers={"Content-Type": "application/octet-stream"})
            return resp
        return await http.get(f"/api/v1/artifacts/blobs/{rng.choice(self.blobs)}")

    async def user(self, seed: int, until: float) -> None:
        rng = random.Random(seed)
        ops, weights = zip(*MIX)
        async with self.client() as http:
            while time.monotonic() < until:
                op = rng.choices(ops, weights)[0]
                started = time.perf_counter()
                try:
                    resp = await self.one(http, op, rng)
                    kind = None if resp.status_code < 400 else str(resp.status_code)
                    if kind:
                        self.errors[op][f"{kind} {resp.text[:120]}"] += 1
                except httpx.HTTPError as err:
                    self.errors[op][type(err).__name__] += 1
                took = time.perf_counter() - started
                self.latency[op].append(took)
                if time.monotonic() >= self.warm_after:
                    self.warm.append(took)
                if self.think_s:  # a person or a training loop between calls: connections sit idle
                    await asyncio.sleep(rng.uniform(0, self.think_s))


async def sample_rss(pids: dict[str, int], every: float, until: float, out: list[dict],
                     threads: list[dict]) -> None:
    started = time.monotonic()
    while True:
        out.append({"t": round(time.monotonic() - started), **{n: proc_status(pid, "VmRSS") for n, pid in pids.items()}})
        threads.append({"t": out[-1]["t"], **{n: proc_status(pid, "Threads") for n, pid in pids.items()}})
        if time.monotonic() >= until:
            return
        await asyncio.sleep(min(every, max(0.0, until - time.monotonic())))


async def drive(args: argparse.Namespace, url: str, token: str, pids: dict[str, int]) -> dict:
    load = Load(url, token, f"load{uuid.uuid4().hex[:6]}", args.think_s)
    await load.setup(args.runs)
    until = time.monotonic() + args.seconds
    load.warm_after = time.monotonic() + min(30.0, args.seconds / 10)  # past 64 cold starts at once
    rss: list[dict] = []
    threads: list[dict] = []
    started = time.monotonic()
    await asyncio.gather(sample_rss(pids, args.sample_s, until, rss, threads),
                         *(load.user(seed, until) for seed in range(args.clients)))
    elapsed = time.monotonic() - started
    every = [x for values in load.latency.values() for x in values]
    return {"clients": args.clients, "seconds": round(elapsed, 1), "requests": len(every),
            "requests_per_s": round(len(every) / elapsed, 1),
            "errors": {op: dict(c) for op, c in load.errors.items() if c},
            "error_count": sum(sum(c.values()) for c in load.errors.values()),
            "latency_ms": {op: {"n": len(v), "p50": round(percentile(v, 0.5) * 1e3, 1),
                                "p99": round(percentile(v, 0.99) * 1e3, 1)}
                           for op, v in [("all", every), ("all, warm", load.warm),
                                         *sorted(load.latency.items())]},
            "rss_kib": rss, "threads": threads}


def report(result: dict) -> None:
    print(f"load average: start {result['loadavg_start']}, end {result['loadavg_end']}")
    print(f"{result['clients']} clients, {result['seconds']} s, {result['requests']} requests "
          f"({result['requests_per_s']}/s), errors: {result['error_count']}")
    for op, kinds in result["errors"].items():
        for kind, n in sorted(kinds.items(), key=lambda kv: -kv[1]):
            print(f"  error {op}: {n} x {kind}")
    print(f"{'operation':<12} {'n':>7} {'p50 ms':>8} {'p99 ms':>8}")
    for op, row in result["latency_ms"].items():
        print(f"{op:<12} {row['n']:>7} {row['p50']:>8} {row['p99']:>8}")
    names = [k for k in result["rss_kib"][0] if k != "t"]
    print("RSS MiB over time: " + "  ".join(f"{n[:8]:>8}" for n in names))
    for row in result["rss_kib"]:
        cells = "  ".join(f"{(row[n] or 0) / 1024:>8.1f}" for n in names)
        print(f"  t={row['t']:>4}s          {cells}")
    for label, row in (("threads first", result["threads"][0]), ("threads last", result["threads"][-1])):
        print(f"  {label:<17} " + "  ".join(f"{row[n] or 0:>8}" for n in names))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=300)
    parser.add_argument("--sample-s", type=float, default=15)
    parser.add_argument("--runs", type=int, default=50, help="runs made first, that the users read and write")
    parser.add_argument("--think-s", type=float, default=0.0,
                        help="each user pauses up to this long (uniform) between requests")
    parser.add_argument("--json", type=Path, help="also write the result here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="cairn-load-") as tmp:
        data_dir = Path(tmp) / "data"
        proc, state = start_cairn(data_dir, Path(tmp) / "up.log")
        try:
            token = (data_dir / "admin.token").read_text().strip()
            pids = {name: s["pid"] for name, s in state["services"].items() if s.get("pid")}
            if state.get("nats_pid"):
                pids["nats"] = state["nats_pid"]
            start_load = os.getloadavg()
            result = asyncio.run(drive(args, state["gateway_url"], token, pids))
            result["loadavg_start"] = " ".join(f"{x:.2f}" for x in start_load)
            result["loadavg_end"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
        finally:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
    report(result)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
