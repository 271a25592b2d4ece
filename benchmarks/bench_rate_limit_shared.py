"""What a rate limit shared by gateway replicas would cost per request (issue 26).

Measures, on a nats-server started as ``cairn up`` starts it (file storage, ``sync_interval:
always``), one request's take from a token bucket kept in a JetStream key-value bucket (get, then
an optimistic update with the expected revision; the token's and the user's bucket: two of each)
against the in-process buckets the gateway uses (cairn.services.gateway.limits). Prints the median
and 95th percentile per request. Run: ``python benchmarks/bench_rate_limit_shared.py [requests]``.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import nats

from cairn.natsserver import start_nats_server
from cairn.services.gateway.limits import request_limits


async def shared_take(kv: object, key: str, rate: float, burst: float) -> None:
    """One take from a bucket kept in key-value: read, refill, write back if nobody wrote since."""
    from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError

    while True:
        now = time.time()
        try:
            entry = await kv.get(key)  # type: ignore[attr-defined]
            tokens, stamp = json.loads(entry.value)
            revision = entry.revision
        except KeyNotFoundError:
            tokens, stamp, revision = burst, now, 0
        level = min(burst, tokens + (now - stamp) * rate)
        try:
            await kv.update(key, json.dumps([level - 1, now]).encode(), last=revision)  # type: ignore[attr-defined]
            return
        except KeyWrongLastSequenceError:
            continue


def percentiles(samples: list[float]) -> str:
    samples.sort()
    return f"median {statistics.median(samples) * 1e6:8.1f} us  p95 {samples[int(0.95 * len(samples))] * 1e6:8.1f} us"


async def main(requests: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        proc, url = start_nats_server(Path(tmp) / "nats")
        try:
            nc = await nats.connect(url)
            kv = await nc.jetstream().create_key_value(bucket="bench-rates", history=1)
            shared: list[float] = []
            for i in range(requests):
                started = time.perf_counter()
                await shared_take(kv, "token.t1", 1e6, 1e6)
                await shared_take(kv, "user.u1", 1e6, 1e6)
                shared.append(time.perf_counter() - started)
                if i == 0:
                    shared.clear()  # the first includes the bucket's warm-up
            await nc.close()
        finally:
            proc.terminate()
            proc.wait(timeout=10)
    limits = request_limits(1e6, 1e6, None, None)
    local: list[float] = []
    for _ in range(requests):
        started = time.perf_counter()
        limits.take("t1", "u1")
        local.append(time.perf_counter() - started)
    print(f"shared in key-value (token + user, get + update each): {percentiles(shared)}")
    print(f"in process (cairn.services.gateway.limits):            {percentiles(local)}")


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 2000))
