"""Lineage end to end: the same synthetic log as bench_lineage.py appended to a real nats-server,
the lineage service (its own process) projecting it live, then ``POST /admin/rebuild`` timed:
the stream read back from NATS, decoded and applied, as a rebuild runs in production.

Usage: python benchmarks/bench_lineage_rebuild.py [--runs 10000]
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import platform as pyplatform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from cairn.kernel.envelope import Event
from cairn.kernel.eventlog import EventLog
from cairn.natsserver import free_port, start_nats_server, wait_for_tcp

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_lineage import generate  # noqa: E402


async def append_all(nats_url: str, events: list[Event]) -> float:
    """Atomic batches of 1,000, one after another, so the log keeps the generated order."""
    log = await EventLog.open(nats_url, name="bench-lineage")
    started = time.perf_counter()
    for i in range(0, len(events), 1000):
        await log.append_batch(events[i:i + 1000])
    seconds = time.perf_counter() - started
    await log.close()
    return len(events) / seconds


def wait_applied(url: str, target: int, timeout: float = 1800) -> float:
    started = time.perf_counter()
    while time.perf_counter() - started < timeout:
        if (httpx.get(f"{url}/healthz", timeout=10).json().get("applied_seq") or 0) >= target:
            return time.perf_counter() - started
        time.sleep(0.2)
    raise TimeoutError("the lineage service did not catch up")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=10_000)
    args = parser.parse_args()
    events = [dataclasses.replace(e, sequence=0) for e in generate(args.runs, 7)]
    print(f"{pyplatform.machine()}, {os.cpu_count()} cpus; {len(events):,} events")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        nats, nats_url = start_nats_server(root / "nats")
        port = free_port()
        env = {**os.environ, "CAIRN_NATS_URL": nats_url, "CAIRN_DATA_DIR": str(root / "data"),
               "CAIRN_PORT": str(port), "CAIRN_HOST": "127.0.0.1", "CAIRN_LOG_LEVEL": "warning"}
        with open(root / "lineage.log", "ab") as log:
            service = subprocess.Popen([sys.executable, "-m", "cairn.services.lineage"], env=env,
                                       stdout=log, stderr=log)
        url = f"http://127.0.0.1:{port}"
        try:
            wait_for_tcp("127.0.0.1", port, timeout=60)
            rate = asyncio.run(append_all(nats_url, events))
            print(f"append (atomic batches of 1000, projected live): {rate:,.0f} events/s")
            lag = wait_applied(url, len(events))
            print(f"live projection caught up {lag:.1f}s after the last append")
            live = httpx.get(f"{url}/admin/content-hash", timeout=600).json()["content_hash"]
            started = time.perf_counter()
            rebuilt = httpx.post(f"{url}/admin/rebuild", timeout=1800).json()
            seconds = time.perf_counter() - started
            print(f"rebuild through NATS: {rebuilt['applied_seq'] / seconds:,.0f} events/s "
                  f"({seconds:.1f}s, {rebuilt['applied_seq']:,} events)")
            print(f"rebuilt content hash equals the live one: {live == rebuilt['content_hash']}")
        finally:
            service.terminate()
            service.wait(timeout=30)
            nats.terminate()
            nats.wait(timeout=30)


if __name__ == "__main__":
    main()
