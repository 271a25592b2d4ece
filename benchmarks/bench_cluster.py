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
  longest gap in acknowledged commands), then SIGKILL of the scheduler (time until it is ready
  again; the lease holder and term when the ``cairn-leases`` bucket exists).

Usage: python benchmarks/bench_cluster.py [--configs 1x1,1x3,3x1,3x3] [--commands 1500]
       [--concurrency 32] [--searches 300] [--failover] [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform as pyplatform
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from cairn.kernel.envelope import Event
from cairn.kernel.eventlog import EventLog, connect
from cairn.kernel.natsauth import NatsCredentials
from cairn.natsserver import free_ports, start_configured_server
from cairn.protocol import EVENTS_STREAM, NATS_TLS_CA_ENV

NODES = ("n1", "n2", "n3")
START_TIMEOUT_S = float(os.environ.get("CAIRN_TEST_START_TIMEOUT_S", "180"))
DEADLINE_S = 90.0
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


def cli(*args: str) -> dict[str, Any]:
    """``cairn --json ARGS`` as an operator runs it."""
    out = subprocess.run([sys.executable, "-m", "cairn.cli.main", "--json", *args], check=True,
                         capture_output=True, text=True)
    return dict(json.loads(out.stdout))


@dataclass
class NatsCluster:
    """Three nats-servers from ``cairn cluster config`` (TLS, Cairn's users), on free ports."""

    root: Path
    configs: dict[str, Path] = field(default_factory=dict)
    ports: dict[str, int] = field(default_factory=dict)
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def make(self) -> "NatsCluster":
        ports = free_ports(3 * len(NODES))
        cli("cluster", "certs", "--out", str(self.root / "tls"), "--name", "bench",
            *(f"--host={n}=127.0.0.1" for n in NODES))
        nodes = [f"--node={n}=127.0.0.1:{ports[3 * i]}:{ports[3 * i + 1]}:{ports[3 * i + 2]}"
                 for i, n in enumerate(NODES)]
        written = cli("cluster", "config", "--out", str(self.out), "--name", "bench",
                      "--tls-dir", str(self.root / "tls"), *nodes)
        self.configs = {name: Path(path) for name, path in written["nodes"].items()}
        self.ports = {n: ports[3 * i] for i, n in enumerate(NODES)}
        for name in NODES:
            self.start(name)
        return self

    @property
    def out(self) -> Path:
        return self.root / "nats"

    @property
    def url(self) -> str:
        return ",".join(f"tls://127.0.0.1:{port}" for port in self.ports.values())

    @property
    def ca(self) -> str:
        return str(self.root / "tls" / "ca.pem")

    def creds(self, role: str) -> Path:
        return self.out / "creds" / f"{role}.json"

    def start(self, name: str) -> None:
        self.procs[name], _ = start_configured_server(self.configs[name], self.out / "store" / name,
                                                      self.root / f"{name}.log")

    def kill(self, name: str) -> None:
        proc = self.procs.pop(name)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)

    def stop(self) -> None:
        for proc in self.procs.values():
            proc.terminate()
        for proc in self.procs.values():
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()


def start_cairn(data_dir: Path, args: list[str], env: dict[str, str], tries: int = 3) -> tuple[subprocess.Popen[bytes], dict]:
    """``cairn up`` with free ports and ``args``; returns it and its state.json once healthy.
    ``cairn up`` gives each process 60 s to listen: on a machine shared with other heavy work a
    stack of 15 processes can take longer, so a start that gave up is tried again."""
    for attempt in range(1, tries + 1):
        try:
            return _start_cairn(data_dir, args, env)
        except SystemExit:
            if attempt == tries:
                raise
            print(f"cairn up did not start (try {attempt} of {tries}); trying again", file=sys.stderr, flush=True)
    raise AssertionError("unreachable")


def _start_cairn(data_dir: Path, args: list[str], env: dict[str, str]) -> tuple[subprocess.Popen[bytes], dict]:
    log_path = data_dir.parent / f"{data_dir.name}-up.log"
    offset = log_path.stat().st_size if log_path.exists() else 0
    with log_path.open("ab") as log:
        proc = subprocess.Popen([sys.executable, "-m", "cairn.cli.main", "up", "--data-dir", str(data_dir),
                                 "--port", "0", *args], env=env, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + START_TIMEOUT_S
    state_file = data_dir / "run" / "state.json"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"cairn up exited ({proc.returncode}); see {log_path}")
        if b"Cairn is up" in log_path.read_bytes()[offset:] and state_file.exists():
            return proc, json.loads(state_file.read_text())
        time.sleep(0.2)
    stop_cairn(proc)
    raise SystemExit(f"cairn up did not become healthy in time; see {log_path}")


def stop_cairn(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


async def command_load(session: aiohttp.ClientSession, base: str, n: int, concurrency: int) -> dict[str, Any]:
    """``n`` create-run-with-params commands, ``concurrency`` at a time."""
    sem = asyncio.Semaphore(concurrency)
    took: list[float] = []
    errors: Counter[str] = Counter()

    async def one(i: int) -> None:
        async with sem:
            started = time.perf_counter()
            async with session.post(f"{base}/runs", json={"params": {"lr": i % 1000, "bs": 32}},
                                    headers={"Idempotency-Key": uuid.uuid4().hex}) as resp:
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


async def search_load(session: aiohttp.ClientSession, base: str, n: int, concurrency: int) -> dict[str, Any]:
    """``n`` run searches (a filter on a param, a page of 20), ``concurrency`` at a time."""
    sem = asyncio.Semaphore(concurrency)
    took: list[float] = []
    errors: Counter[str] = Counter()

    async def one(i: int) -> None:
        async with sem:
            started = time.perf_counter()
            async with session.post(f"{base}/runs/search",
                                    json={"filter": f"params.lr < {10 + i % 90}", "page_size": 20}) as resp:
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
    async with aiohttp.ClientSession(connector=connector, headers=headers,
                                     timeout=aiohttp.ClientTimeout(total=60)) as session:
        async with session.post(f"{gateway}/api/v1/registry/projects", json={"name": project}) as resp:
            assert resp.status in (200, 201), await resp.text()
        base = f"{gateway}/api/v1/registry/projects/{project}"
        await command_load(session, base, min(200, args.commands), args.concurrency)  # warm-up
        before = {name: cpu_seconds(pid) for name, pid in pids.items()}
        me, started = time.process_time(), time.perf_counter()
        commands = await command_load(session, base, args.commands, args.concurrency)
        wall = time.perf_counter() - started
        cpu = {name: round((cpu_seconds(pid) or 0.0) - (before[name] or 0.0), 2) for name, pid in pids.items()}
        cpu["load generator"] = round(time.process_time() - me, 2)
        searches = await search_load(session, base, args.searches, args.search_concurrency)
    busiest = sorted(cpu.items(), key=lambda item: -item[1])
    return {"commands": commands, "search": searches, "cpu_wall_s": round(wall, 2),
            "cpu_s": dict(busiest), "cpu_s_total": round(sum(cpu.values()), 2),
            "cores_busy": round(sum(cpu.values()) / wall, 2),  # of os.cpu_count(): what we were given
            "cpu_ms_per_command": {name: round(s * 1e3 / args.commands, 2) for name, s in busiest}}


async def gateway_status(session: aiohttp.ClientSession, gateway: str) -> dict[str, Any]:
    try:
        async with session.get(f"{gateway}/api/v1/status", timeout=aiohttp.ClientTimeout(total=5)) as resp:
            return dict(await resp.json()) if resp.status in (200, 503) else {}
    except (aiohttp.ClientError, asyncio.TimeoutError, ValueError):
        return {}


async def lead_from_writers_node(cluster: NatsCluster, admin: Any, log: EventLog) -> str:
    """Make the node the raw writer is connected to the event stream's leader (the worst case:
    the writer must reconnect and wait out an election) and name it."""
    port = log.nc.connected_url.port  # type: ignore[union-attr]
    node = next(name for name, p in cluster.ports.items() if p == port)
    js = admin.jetstream(timeout=5)
    deadline = time.monotonic() + DEADLINE_S
    while (await js.stream_info(EVENTS_STREAM)).cluster.leader != node:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{node} never became the event stream's leader")
        try:
            await admin.request(f"$JS.API.STREAM.LEADER.STEPDOWN.{EVENTS_STREAM}",
                                json.dumps({"placement": {"preferred": node}}).encode(), timeout=5)
        except Exception:  # noqa: BLE001 - an election under way: ask again
            pass
        await asyncio.sleep(0.2)
    return node


async def nats_failover(cluster: NatsCluster, gateway: str, token: str) -> dict[str, Any]:
    """SIGKILL the event stream's leader node while a raw appender (one append at a time, 1 s
    publish timeout, retried) and 8 gateway clients write; how long until each succeeds again."""
    admin = await connect(cluster.url, name="bench-admin", credentials=NatsCredentials.read(cluster.creds("admin")))
    log = await EventLog.open(cluster.url, name="bench-writer", replicas=3,
                              credentials=NatsCredentials.read(cluster.creds("admin")))
    log.js = log.nc.jetstream(timeout=1)
    leader = await lead_from_writers_node(cluster, admin, log)
    acked: list[tuple[float, float]] = []  # acknowledged appends: sent, acknowledged (monotonic)
    done: list[tuple[float, float, int]] = []  # gateway commands: start, end, status (0: no answer)
    killed = asyncio.Event()
    kill_at = 0.0
    project = f"fail{uuid.uuid4().hex[:6]}"
    loop = asyncio.get_running_loop()
    stop_at = loop.time() + DEADLINE_S

    def after_kill(times: list[float]) -> int:
        return sum(t > kill_at for t in times) if killed.is_set() else 0

    def enough() -> bool:
        return (after_kill([a for _, a in acked]) >= 20 and after_kill([e for _, e, s in done if s == 201]) >= 20) \
            or loop.time() > stop_at

    async def appender() -> None:
        n = 0
        while not enough():
            event = Event(type="run.created", project=project, aggregate="run", aggregate_id=f"a{n}",
                          data={"experiment_id": "e", "name": f"a{n}", "params": {}, "tags": {},
                                "description": "", "status": "running"})
            try:
                sent = loop.time()
                await log.append(event, expected_last_subject_seq=None)
                acked.append((sent, loop.time()))
                n += 1
            except Exception:  # noqa: BLE001 - a dead leader: timeouts, no responders; retried
                await asyncio.sleep(0.01)

    async def client(session: aiohttp.ClientSession) -> None:
        while not enough():
            started = loop.time()
            try:
                async with session.post(f"{gateway}/api/v1/registry/projects/{project}/runs",
                                        json={"params": {"x": 1}},
                                        headers={"Idempotency-Key": uuid.uuid4().hex}) as resp:
                    await resp.read()
                    status = resp.status
            except (aiohttp.ClientError, asyncio.TimeoutError):
                status = 0
            done.append((started, loop.time(), status))
            if status != 201:
                await asyncio.sleep(0.05)

    async def killer() -> None:
        nonlocal kill_at
        while len(acked) < 50 or sum(s == 201 for *_, s in done) < 50:
            await asyncio.sleep(0.05)
            if loop.time() > stop_at:
                return
        cluster.kill(leader)  # returns once the process is gone
        kill_at = loop.time()
        killed.set()

    headers = {"Authorization": f"Bearer {token}"}
    async with aiohttp.ClientSession(headers=headers, timeout=aiohttp.ClientTimeout(total=60)) as session:
        async with session.post(f"{gateway}/api/v1/registry/projects", json={"name": project}) as resp:
            assert resp.status in (200, 201), await resp.text()
        await asyncio.gather(appender(), killer(), *(client(session) for _ in range(8)))
        new_leader = (await admin.jetstream(timeout=5).stream_info(EVENTS_STREAM)).cluster.leader  # type: ignore[union-attr]
    await log.close()
    await admin.close()
    await asyncio.to_thread(cluster.start, leader)  # whole again for what follows
    ok = sorted(e for _, e, s in done if s == 201)
    raw_after = [a for s, a in acked if s > kill_at]
    sent_after = [e for s, e, st in done if st == 201 and s > kill_at]
    gaps = [b - a for a, b in zip(ok, ok[1:], strict=False) if b > kill_at]
    return {"killed": leader, "new_leader": new_leader, "appended_before_and_after": len(acked),
            "raw_append_s_until_one_sent_after_the_kill_acked": round(raw_after[0] - kill_at, 2) if raw_after else None,
            "gateway_s_until_a_command_sent_after_the_kill_acked": round(sent_after[0] - kill_at, 2)
            if sent_after else None,
            "gateway_longest_gap_between_acks_s": round(max(gaps), 2) if gaps else None,
            "gateway_slowest_command_s": round(max(e - s for s, e, _ in done), 2) if done else None,
            "gateway_answers": dict(Counter(str(s) for *_, s in done))}


async def scheduler_failover(state: dict, gateway: str, token: str, cluster: NatsCluster | None) -> dict[str, Any]:
    """SIGKILL the scheduler; until the gateway reports it ready again. With part B's leases the
    holder and term of ``scheduler.dispatcher`` before and after (None: no ``cairn-leases``)."""
    async def lease() -> dict | None:
        if cluster is None:
            return None
        nc = await connect(cluster.url, name="bench-lease", credentials=NatsCredentials.read(cluster.creds("admin")))
        try:
            kv = await nc.jetstream(timeout=5).key_value("cairn-leases")
            entry = await kv.get("scheduler.dispatcher")
            return dict(json.loads(entry.value or b"{}"))
        except Exception:  # noqa: BLE001 - no bucket or no key: part B is not here
            return None
        finally:
            await nc.close()

    held = await lease()
    pid = state["services"]["scheduler"]["pid"]
    headers = {"Authorization": f"Bearer {token}"}
    async with aiohttp.ClientSession(headers=headers) as session:
        killed = time.monotonic()
        os.kill(pid, signal.SIGKILL)
        seen_down, ready_s = False, None
        while time.monotonic() - killed < DEADLINE_S:
            line = (await gateway_status(session, gateway)).get("services", {}).get("scheduler", {})
            if not line.get("ready"):
                seen_down = True
            elif seen_down:
                ready_s = round(time.monotonic() - killed, 2)
                break
            await asyncio.sleep(0.05)
    return {"scheduler_s_until_ready": ready_s, "lease_before": held, "lease_after": await lease(),
            "how": "restarted by cairn up's supervisor (0.5 s backoff, then start-up)"}


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
    lines = ["| config | commands/s | command p50 / p99 ms | search p50 / p99 ms | CPU ms per command: busiest "
             "| first bottleneck: one-core ceiling | cores we got | load before / after |",
             "| --- | ---: | ---: | ---: | --- | --- | ---: | --- |"]
    for r in results:
        c, s = r["commands"], r["search"]
        total = round(sum(r["cpu_ms_per_command"].values()), 1)
        busiest = ", ".join(f"{name} {ms}" for name, ms in list(r["cpu_ms_per_command"].items())[:3])
        name, ceiling = bottleneck(r)
        lines.append(f"| {r['config']} | {c['commands_per_s']} | {c['p50_ms']} / {c['p99_ms']} | "
                     f"{s['p50_ms']} / {s['p99_ms']} | {total} in all; {busiest} | {name}: {ceiling}/s | "
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
    parser.add_argument("--failover", action="store_true", help="failover on the last 3-node configuration")
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
