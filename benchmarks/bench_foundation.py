"""Foundation benchmark: raw event-log appends, projection rebuild, gateway commands.

Starts its own nats-server, registry and gateway (like the tests) in a temp dir and prints
events/s and commands/s. Usage: python benchmarks/bench_foundation.py [--events 50000] [--commands 3000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform as pyplatform
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from cairn.kernel.envelope import Event  # noqa: E402
from cairn.kernel.eventlog import EventLog  # noqa: E402

from platform_harness import Platform  # noqa: E402


async def raw_append(nats_url: str, n: int, batch: int, window: int) -> tuple[float, float]:
    """Appends straight to the log: one at a time (a command's path: optimistic concurrency,
    one disk sync each) and pipelined as atomic batches (``window`` batches in flight)."""
    log = await EventLog.open(nats_url, name="bench")
    # Valid events only (the registry projects them too): 1,000 runs, then tags on them.
    created = [Event(type="run.created", project="bench", aggregate="run", aggregate_id=f"r{i}",
                     data={"experiment_id": "e", "name": f"r{i}", "params": {}, "tags": {},
                           "description": "", "status": "running"}) for i in range(1000)]
    start = time.perf_counter()
    for event in created:
        await log.append(event, expected_last_subject_seq=0)
    single = len(created) / (time.perf_counter() - start)
    events = [Event(type="run.tag_set", project="bench", aggregate="run", aggregate_id=f"r{i % 1000}",
                    data={"key": f"k{i}", "value": "v"}) for i in range(n)]
    sem = asyncio.Semaphore(window)

    async def one(chunk: list[Event]) -> None:
        async with sem:
            await log.append_batch(chunk)

    start = time.perf_counter()
    await asyncio.gather(*(one(events[i:i + batch]) for i in range(0, n, batch)))
    pipelined = n / (time.perf_counter() - start)
    await log.close()
    return single, pipelined


async def gateway_commands(gateway: str, headers: dict[str, str], n: int, concurrency: int) -> float:
    """Create a run with params through the gateway, ``concurrency`` clients at once.

    The load generator is aiohttp: httpx's pool costs milliseconds of CPU per request at this
    concurrency and would measure itself rather than the gateway.
    """
    base = f"{gateway}/api/v1/registry"
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency), headers=headers) as session:
        async with session.post(f"{base}/projects", json={"name": "bench-gw"}) as resp:
            await resp.read()
        sem = asyncio.Semaphore(concurrency)

        async def one(i: int) -> None:
            async with sem:
                async with session.post(f"{base}/projects/bench-gw/runs",
                                        json={"params": {"lr": i, "bs": 32}}) as resp:
                    assert resp.status == 201, await resp.text()
                    await resp.read()

        start = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(n)))
        return n / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--window", type=int, default=8)
    parser.add_argument("--commands", type=int, default=3_000)
    parser.add_argument("--concurrency", type=int, default=64)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        plat = Platform(Path(tmp), env={"CAIRN_RATE_LIMIT": "0"}).start()
        try:
            single_rate, append_rate = asyncio.run(raw_append(plat.nats_url, args.events, args.batch,
                                                              args.window))
            command_rate = asyncio.run(gateway_commands(plat.gateway, plat.headers, args.commands, args.concurrency))
            total = httpx.get(f"{plat.gateway}/api/v1/status", headers=plat.headers).json()["event_log"]["last_seq"]
            start = time.perf_counter()
            rebuilt = httpx.post(f"{plat.gateway}/api/v1/registry/admin/rebuild", headers=plat.headers, timeout=600).json()
            rebuild_rate = rebuilt["applied_seq"] / (time.perf_counter() - start)
        finally:
            plat.stop()
    result = {
        "machine": f"{pyplatform.node()} {os.cpu_count()} cpus {pyplatform.processor() or pyplatform.machine()}",
        "date": time.strftime("%Y-%m-%d"),
        "raw_append_one_at_a_time_events_per_s": round(single_rate),
        "raw_append_pipelined_events_per_s": round(append_rate),
        "gateway_commands_per_s": round(command_rate),
        "rebuild_events": total,
        "rebuild_events_per_s": round(rebuild_rate),
        "targets": {"raw_append": 20_000, "rebuild": 20_000, "gateway_commands": 1_000},
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
