"""Cluster benchmark (issue 26): how command throughput, search latency and failover change with
service replicas and a 3-node JetStream cluster, and which process runs out of CPU first.

Why: cluster mode buys fault tolerance and, on real machines, capacity; this measures what each
piece costs and where the time goes, so that docs/cluster.md can say how the figures scale.
Each configuration ``NxR`` (N nats-servers: 1, or a 3-node cluster made by ``cairn cluster
certs`` + ``cairn cluster config`` with TLS and every stream at 3 replicas; R replicas of each
replicable service, ``cairn up --service-replicas R``) starts a real ``cairn up`` on loopback
(free ports, rate limit off) and measures:

- gateway commands: ``POST /projects/P/runs`` with params, ``--concurrency`` clients (aiohttp);
- run search latency: ``POST /projects/P/runs/search`` over the runs just made (p50/p99);
- CPU seconds of every process (``/proc/<pid>/stat``: services, replicas, nats-servers, the load
  generator) over the command load: the busiest process is the first bottleneck;
- with ``--failover``, on the last cluster configuration: SIGKILL of the event stream's leader
  node while a raw appender and gateway clients write (time until appends succeed again, the
  longest gap in acknowledged commands), then SIGKILL of the scheduler that holds the
  dispatcher lease (time until the lease has a new term and the scheduler is ready again); with
  scheduler replicas (R > 1) the lease's handover when its holder is frozen and when the next
  holder is killed; with one, ``--standby-scheduler`` starts a second scheduler for that.

Usage: python benchmarks/bench_cluster.py [--configs 1x1,1x3,3x1,3x3] [--commands 1500]
       [--concurrency 32] [--searches 300] [--tokens 1] [--failover [--standby-scheduler]]
       [--json out.json] [--keep DIR] | --table out.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform as pyplatform
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
from cluster_failover import nats_failover, replica_takeover, scheduler_failover, standby_takeover
from cluster_stack import NatsCluster, start_cairn, stop_cairn

from cairn.protocol import NATS_TLS_CA_ENV

TICK = os.sysconf("SC_CLK_TCK")


def parse_configs(text: str) -> list[tuple[int, int]]:
    """``1x1,3x3`` -> [(1, 1), (3, 3)]: nats-servers (1 or 3) by service replicas (1-8)."""
    configs: list[tuple[int, int]] = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        nodes, sep, replicas = part.partition("x")
        if not sep or not nodes.isdigit() or not replicas.isdigit() or int(nodes) not in (1, 3) \
                or not 1 <= int(replicas) <= 8:
            raise argparse.ArgumentTypeError(f"{part!r}: expected NODESxREPLICAS, NODES 1 or 3, REPLICAS 1-8")
        configs.append((int(nodes), int(replicas)))
    if not configs:
        raise argparse.ArgumentTypeError("no configuration given")
    return configs


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of ``pid`` (its threads included); None once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / TICK  # utime, stime: fields 14 and 15 of stat


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


async def command_load(session: aiohttp.ClientSession, base: str, n: int, concurrency: int,
                       tokens: list[str]) -> dict[str, Any]:
    """``n`` create-run-with-params commands, ``concurrency`` at a time, command i with token
    i mod len(tokens) (the gateway keeps read-your-writes per token: one token for all is one
    client whose every request waits for its latest write; several are independent clients)."""
    sem = asyncio.Semaphore(concurrency)
    took: list[float] = []
    errors: Counter[str] = Counter()

    async def one(i: int) -> None:
        async with sem:
            started = time.perf_counter()
            async with session.post(f"{base}/runs", json={"params": {"lr": i % 1000, "bs": 32}},
                                    headers={"Idempotency-Key": uuid.uuid4().hex,
                                             "Authorization": f"Bearer {tokens[i % len(tokens)]}"}) as resp:
                body = await resp.read()
                if resp.status != 201:
                    errors[f"{resp.status} {body[:100].decode(errors='replace')}"] += 1
            took.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(n)))
    wall = time.perf_counter() - started
    return {"commands": n, "wall_s": round(wall, 2), "commands_per_s": round(n / wall, 1),
            "p50_ms": round(percentile(took, 0.5) * 1e3, 1), "p99_ms": round(percentile(took, 0.99) * 1e3, 1),
            "errors": dict(errors)}


async def search_load(session: aiohttp.ClientSession, base: str, n: int, concurrency: int,
                      tokens: list[str]) -> dict[str, Any]:
    """``n`` run searches (a filter on a param, a page of 20), ``concurrency`` at a time."""
    sem = asyncio.Semaphore(concurrency)
    took: list[float] = []
    errors: Counter[str] = Counter()

    async def one(i: int) -> None:
        async with sem:
            started = time.perf_counter()
            async with session.post(f"{base}/runs/search",
                                    json={"filter": f"params.lr < {10 + i % 90}", "page_size": 20},
                                    headers={"Authorization": f"Bearer {tokens[i % len(tokens)]}"}) as resp:
                await resp.read()
                if resp.status != 200:
                    errors[str(resp.status)] += 1
            took.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(n)))
    wall = time.perf_counter() - started
    return {"searches": n, "concurrency": concurrency, "per_s": round(n / wall, 1),
            "p50_ms": round(percentile(took, 0.5) * 1e3, 1), "p99_ms": round(percentile(took, 0.99) * 1e3, 1),
            "errors": dict(errors)}


async def metric_load(session: aiohttp.ClientSession, gateway: str, project: str, run_id: str, batches: int,
                      points: int, concurrency: int, token: str) -> dict[str, Any]:
    """``batches`` metric batches of ``points`` points each into one run, ``concurrency`` at a
    time (with N metrics replicas every replica writes every point); then how long until a read
    naming the last batch's sequence (Cairn-Min-Metrics-Seq) is answered with every point."""
    sem = asyncio.Semaphore(concurrency)
    took: list[float] = []
    errors: Counter[str] = Counter()
    top = 0
    path = f"{gateway}/api/v1/metrics/projects/{project}/runs/{run_id}/metrics"
    auth = {"Authorization": f"Bearer {token}"}

    async def one(i: int) -> None:
        nonlocal top
        body = {"batch_id": uuid.uuid4().hex,
                "points": [{"key": "loss", "value": 1.0 / (k + 1), "step": i * points + k} for k in range(points)]}
        async with sem:
            started = time.perf_counter()
            async with session.post(path, json=body, headers=auth) as resp:
                answer = await resp.read()
                if resp.status != 202:
                    errors[f"{resp.status} {answer[:100].decode(errors='replace')}"] += 1
                else:
                    top = max(top, int(json.loads(answer)["sequence"]))
            took.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(batches)))
    wall = time.perf_counter() - started
    read_started = time.perf_counter()
    async with session.get(path, params={"key": "loss", "points": "100"},
                           headers={**auth, "Cairn-Min-Metrics-Seq": str(top)}) as resp:
        total = (await resp.json()).get("total") if resp.status == 200 else f"{resp.status}"
    return {"batches": batches, "points_per_batch": points, "points_per_s": round(batches * points / wall),
            "p50_ms": round(percentile(took, 0.5) * 1e3, 1), "p99_ms": round(percentile(took, 0.99) * 1e3, 1),
            "read_after_last_ms": round((time.perf_counter() - read_started) * 1e3, 1), "read_total": total,
            "errors": dict(errors)}


def processes(state: dict, cluster: NatsCluster | None) -> dict[str, int]:
    pids = {name: info["pid"] for name, info in state["services"].items() if info.get("pid")}
    if cluster is not None:
        pids.update({f"nats-{name}": proc.pid for name, proc in cluster.procs.items()})
    elif state.get("nats_pid"):
        pids["nats"] = state["nats_pid"]
    return pids


async def measure(gateway: str, token: str, pids: dict[str, int], args: argparse.Namespace) -> dict[str, Any]:
    """Commands with a CPU profile of every process around them, then searches."""
    headers = {"Authorization": f"Bearer {token}"}
    project = f"bench{uuid.uuid4().hex[:6]}"
    connector = aiohttp.TCPConnector(limit=max(args.concurrency, args.search_concurrency))
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=60)) as session:
        tokens = [token]
        for _ in range(args.tokens - 1):  # site admins of their own: no project membership to set up
            async with session.post(f"{gateway}/api/v1/tokens", headers=headers,
                                    json={"site_admin": True, "description": "bench_cluster"}) as resp:
                assert resp.status == 201, await resp.text()
                tokens.append((await resp.json())["token"])
        async with session.post(f"{gateway}/api/v1/registry/projects", json={"name": project},
                                headers=headers) as resp:
            assert resp.status in (200, 201), await resp.text()
        base = f"{gateway}/api/v1/registry/projects/{project}"
        await command_load(session, base, min(200, args.commands), args.concurrency, tokens)  # warm-up
        before = {name: cpu_seconds(pid) for name, pid in pids.items()}
        me, started = time.process_time(), time.perf_counter()
        commands = await command_load(session, base, args.commands, args.concurrency, tokens)
        wall = time.perf_counter() - started
        cpu = {name: round((cpu_seconds(pid) or 0.0) - (before[name] or 0.0), 2) for name, pid in pids.items()}
        cpu["load generator"] = round(time.process_time() - me, 2)
        searches = await search_load(session, base, args.searches, args.search_concurrency, tokens)
        async with session.post(f"{base}/runs", json={"name": "metrics"}, headers=headers) as resp:
            run_id = (await resp.json())["id"]
        metrics = await metric_load(session, gateway, project, run_id, args.metric_batches, args.metric_points,
                                    args.metric_concurrency, token)
    busiest = sorted(cpu.items(), key=lambda item: -item[1])
    return {"tokens": len(tokens), "commands": commands, "search": searches, "metrics": metrics,
            "cpu_wall_s": round(wall, 2),
            "cpu_s": dict(busiest), "cpu_s_total": round(sum(cpu.values()), 2),
            "cores_busy": round(sum(cpu.values()) / wall, 2),  # of os.cpu_count(): what we were given
            "cpu_ms_per_command": {name: round(s * 1e3 / args.commands, 2) for name, s in busiest}}


def run_config(nodes: int, replicas: int, root: Path, args: argparse.Namespace, failover: bool) -> dict[str, Any]:
    env = {**os.environ, "CAIRN_RATE_LIMIT": "0"}
    cluster = None
    up_args = ["--nats-port", "0", "--service-replicas", str(replicas)]
    if nodes == 3:
        cluster = NatsCluster(root / "cluster").make()
        env.update({"CAIRN_REPLICAS": "3", NATS_TLS_CA_ENV: cluster.ca})
        os.environ[NATS_TLS_CA_ENV] = cluster.ca  # this process's own NATS connections (failover)
        up_args = ["--nats-url", cluster.url, "--nats-creds", str(cluster.creds("admin")),
                   "--nats-agent-creds", str(cluster.creds("agent")), "--service-replicas", str(replicas)]
    result: dict[str, Any] = {"config": f"{nodes}x{replicas}", "nats_nodes": nodes, "service_replicas": replicas,
                              "loadavg_before": loadavg()}
    proc = None
    try:
        proc, state = start_cairn(root / "data", up_args, env)
        token = (root / "data" / "admin.token").read_text().strip()
        gateway = state["gateway_url"]
        result.update(asyncio.run(measure(gateway, token, processes(state, cluster), args)))
        if failover:
            if cluster is not None:
                result["nats_failover"] = asyncio.run(nats_failover(cluster, gateway, token))
            state = json.loads((root / "data" / "run" / "state.json").read_text())
            result["scheduler_failover"] = asyncio.run(scheduler_failover(state, gateway, token, cluster))
            if cluster is not None and (args.standby_scheduler or replicas > 1):  # a restarted one: its pid anew
                state = json.loads((root / "data" / "run" / "state.json").read_text())
                result["scheduler_standby"] = asyncio.run(
                    replica_takeover(state, cluster) if replicas > 1 else standby_takeover(state, cluster, root / "data" / "logs"))
    finally:
        if proc is not None:
            stop_cairn(proc)
        if cluster is not None:
            cluster.stop()
            os.environ.pop(NATS_TLS_CA_ENV, None)
    result["loadavg_after"] = loadavg()
    return result


def bottleneck(result: dict[str, Any]) -> tuple[str, float]:
    """The process that spent the most CPU per command, and the commands/s at which it would fill
    one core of its own (a service's event loop runs on one core; nats-server can use several)."""
    per_command = {name: ms for name, ms in result["cpu_ms_per_command"].items() if name != "load generator"}
    name = max(per_command, key=lambda n: per_command[n])
    return name, round(1000 / per_command[name]) if per_command[name] else float("inf")


def table(results: list[dict[str, Any]]) -> str:
    """The figures of each configuration as a Markdown table: the busiest processes (CPU ms per
    command) and the first bottleneck's one-core ceiling."""
    lines = ["| config | commands/s | command p50 / p99 ms | search p50 / p99 ms | metric points/s (batch p50 ms) "
             "| CPU ms per command: busiest | first bottleneck: one-core ceiling | cores we got | load before / after |",
             "| --- | ---: | ---: | ---: | ---: | --- | --- | ---: | --- |"]
    for r in results:
        c, s = r["commands"], r["search"]
        total = round(sum(r["cpu_ms_per_command"].values()), 1)
        busiest = ", ".join(f"{name} {ms}" for name, ms in list(r["cpu_ms_per_command"].items())[:3])
        name, ceiling = bottleneck(r)
        config = r["config"] + (f", {r['tokens']} tokens" if r.get("tokens", 1) > 1 else "")
        m = r.get("metrics") or {}
        points = f"{m['points_per_s']} ({m['p50_ms']})" if m else "-"
        lines.append(f"| {config} | {c['commands_per_s']} | {c['p50_ms']} / {c['p99_ms']} | "
                     f"{s['p50_ms']} / {s['p99_ms']} | {points} | {total} in all; {busiest} | {name}: {ceiling}/s | "
                     f"{r.get('cores_busy', '-')} | {r['loadavg_before']} / {r['loadavg_after']} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configs", type=parse_configs, default=parse_configs("1x1,1x3,3x1,3x3"),
                        help="NODESxREPLICAS, comma-separated (NODES: 1 nats-server or a 3-node cluster)")
    parser.add_argument("--commands", type=int, default=1500)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--searches", type=int, default=300)
    parser.add_argument("--search-concurrency", type=int, default=4)
    parser.add_argument("--metric-batches", type=int, default=200)
    parser.add_argument("--metric-points", type=int, default=1000)
    parser.add_argument("--metric-concurrency", type=int, default=8)
    parser.add_argument("--tokens", type=int, default=1,
                        help="clients' tokens (1: one client with --concurrency requests in flight)")
    parser.add_argument("--failover", action="store_true", help="failover on the last 3-node configuration")
    parser.add_argument("--standby-scheduler", action="store_true",
                        help="with --failover: a second scheduler replica, and its takeover of the lease (part B)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--keep", type=Path, help="run under this folder and keep it (logs, data)")
    parser.add_argument("--table", type=Path, help="only print the table of a --json file written earlier")
    args = parser.parse_args(argv)
    if args.table:
        print(table(json.loads(args.table.read_text())["results"]))
        return
    last_cluster = max((i for i, (n, _) in enumerate(args.configs) if n == 3), default=-1)
    results = []
    for i, (nodes, replicas) in enumerate(args.configs):
        failover = args.failover and i == last_cluster
        if args.keep:
            root = args.keep / f"{nodes}x{replicas}"
            root.mkdir(parents=True, exist_ok=False)
            results.append(run_config(nodes, replicas, root, args, failover))
        else:
            with tempfile.TemporaryDirectory(prefix=f"bench-cluster-{nodes}x{replicas}-") as tmp:
                results.append(run_config(nodes, replicas, Path(tmp), args, failover))
        print(json.dumps(results[-1], indent=2), flush=True)
    summary = {"machine": f"{pyplatform.node()} {os.cpu_count()} cpus {pyplatform.processor() or pyplatform.machine()}",
               "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "results": results}
    print(table(results))
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
