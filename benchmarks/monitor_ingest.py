"""bench_monitor.py --ingest: the monitor's ingest path on sample messages as replicas send them.

Workload: ``--deployments`` deployments of one project, each sending messages of
``--batch-samples`` sampled requests (one input row each: 20 float64 features, a float
prediction, status 200 or, one in 50, 503, a log-normal latency), encoded by
``cairn.serving.inference_records.encode_samples`` over ``InferenceSample`` objects exactly as a
replica's sink does. Building a pandas frame per sample is slow, so each deployment's features
come from a pool of pre-built frames (the values repeat every ``POOL`` requests; request ids,
times, predictions, statuses and latencies do not); encoding is untimed.

Event time advances by ``--event-rate`` samples per second per deployment from a fixed epoch,
so windows of ``--windows`` sizes (default ``2s,1m``) open and close over the stream: closing
cost (latency quantiles, the window's profile on the reference's edges, drift against the
reference, the SQLite rows) is in the figure. The reference profile is registered up front
(``profile_samples`` of a separate draw, untimed) as the service's ``reference_loader`` would
return it.

Timed: what ``InferenceConsumer`` runs per fetch of ``FETCH`` messages, ``_ingest`` (``parse``:
decode and read the requests; ``WindowStore.ingest``: window updates, the message kept for
drift, predictions kept for labels, the stream position, one transaction) then
``close_due(clock)`` with the clock at the newest sample's time (a monitor keeping up), on a
fresh SQLite file in a temporary directory. NATS is not in the timed loop. Figures: samples per
CPU second of the whole process (``time.process_time``: every thread, so the core's threads
count; robust to other processes' load) and per wall second.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cairn.serving.inference_records import decode_batch, encode_samples
from cairn.serving.sink import InferenceSample

FEATURES = 20
POOL = 2000  # pre-built one-row frames per deployment
EPOCH = 1_800_000_000.0  # event time of the first sample (a multiple of every window size)


def _frames(rng: np.random.Generator, n: int, shift: float) -> list[pd.DataFrame]:
    names = [f"f{i}" for i in range(FEATURES)]
    values = rng.standard_normal((n, FEATURES)) * (1 + np.arange(FEATURES) % 3) + np.arange(FEATURES) % 7
    values[:, 1] += shift  # the current stream's f1 drifts by `shift` standard deviations
    return [pd.DataFrame(values[i:i + 1], columns=names) for i in range(n)]


def _message(rng: np.random.Generator, frames: list[pd.DataFrame], deployment: str, first: int, count: int,
             event_rate: float) -> bytes:
    samples = []
    for i in range(first, first + count):
        frame = frames[i % len(frames)]
        samples.append(InferenceSample(
            request_id=f"{deployment}-{i}", project="bench", model="m", version=1, features=frame,
            prediction=np.array([float(frame.iat[0, 0]) * 0.5 + rng.standard_normal() * 0.1]),
            latency_ms=float(rng.lognormal(1.5, 0.5)), status=503 if rng.random() < 0.02 else 200,
            time=EPOCH + i / event_rate, deployment=deployment, replica=f"{deployment}-r1"))
    encoded = encode_samples(samples)
    assert len(encoded) == 1, "one schema per message expected"
    return encoded[0][0]


def build_messages(args: argparse.Namespace) -> tuple[list[tuple[int, str, bytes]], list[float], dict[str, Any]]:
    """The stream: (sequence, subject, Arrow bytes) interleaved across deployments, the newest
    sample time seen by each message's end, and a reference profile per deployment."""
    from cairn.monitor.profile import profile_samples
    from cairn.services.monitor.windows import Reference

    rng = np.random.default_rng(args.seed)
    deployments = [f"d{k}" for k in range(args.deployments)]
    per_deployment = -(-args.samples // (args.deployments * args.batch_samples))
    streams: dict[str, list[bytes]] = {}
    references: dict[str, Any] = {}
    for name in deployments:
        reference_frames = _frames(rng, min(POOL, 4 * args.batch_samples), 0.0)
        table = decode_batch(_message(rng, reference_frames, name, 0, len(reference_frames), args.event_rate))
        profile = profile_samples(table)
        references[name] = Reference(profile.digest(), profile)
        frames = _frames(rng, POOL, 0.5)
        streams[name] = [_message(rng, frames, name, m * args.batch_samples, args.batch_samples, args.event_rate)
                         for m in range(per_deployment)]
    messages, newest = [], []
    for m in range(per_deployment):
        for name in deployments:
            messages.append((len(messages) + 1, f"cairn.inference.bench.{name}", streams[name][m]))
            newest.append(EPOCH + ((m + 1) * args.batch_samples - 1) / args.event_rate)
    return messages, newest, references


def run_ingest(args: argparse.Namespace) -> dict[str, Any]:
    from cairn.services.monitor.consumer import FETCH, parse
    from cairn.services.monitor.domain import parse_sizes
    from cairn.services.monitor.window_store import WindowStore

    build_s = time.perf_counter()
    messages, newest, references = build_messages(args)
    build_s = time.perf_counter() - build_s
    samples = len(messages) * args.batch_samples
    with tempfile.TemporaryDirectory(prefix="cairn-bench-ingest-") as tmp:
        store = WindowStore(Path(tmp) / "windows.sqlite3", parse_sizes(args.windows), args.grace_s,
                            lambda project, deployment: references.get(deployment))
        profiler = None
        if args.profile:
            import cProfile
            profiler = cProfile.Profile(time.process_time)  # CPU time: robust to the load of others
            profiler.enable()
        cpu0, wall0 = time.process_time(), time.perf_counter()
        for i in range(0, len(messages), FETCH):
            batch = messages[i:i + FETCH]
            store.ingest(parse(batch))
            store.close_due(newest[min(i + FETCH, len(messages)) - 1])
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
        if profiler is not None:
            import pstats
            profiler.disable()
            pstats.Stats(profiler).sort_stats("tottime").print_stats(args.profile)
        smallest = store.smallest
        closed = store.query("SELECT count(*), coalesce(sum(requests), 0), sum(drift IS NOT NULL) FROM windows "
                             "WHERE size=?", (smallest,))[0]
        still_open = store.query("SELECT coalesce(sum(requests), 0) FROM open_windows WHERE size=?", (smallest,))[0]
        drifted = store.query("SELECT drift FROM windows WHERE size=? AND drift IS NOT NULL LIMIT 1", (smallest,))
        all_closed = store.query("SELECT count(*) FROM windows")[0][0]
        db_bytes = sum(f.stat().st_size for f in Path(tmp).iterdir())
        position = store.position()
    first_drift = json.loads(drifted[0][0]) if drifted else None
    return {
        "mode": "ingest", "samples": samples, "messages": len(messages), "batch_samples": args.batch_samples,
        "deployments": args.deployments, "features": FEATURES, "windows": args.windows,
        "event_rate_per_deployment": args.event_rate, "fetch": FETCH,
        "message_bytes": len(messages[0][2]), "untimed_build_s": round(build_s, 2),
        "cpu_s": round(cpu, 3), "wall_s": round(wall, 3),
        "samples_per_cpu_s": round(samples / cpu) if cpu > 0 else None,
        "samples_per_wall_s": round(samples / wall) if wall > 0 else None, "target_per_core": 200_000,
        "windows_closed": int(all_closed), "smallest_closed": int(closed[0]),
        "smallest_closed_with_drift": int(closed[2] or 0),
        "counted": int(closed[1]) + int(still_open[0]), "position": position,
        "drifted_columns_first_window": first_drift["drifted_columns"] if first_drift else None,
        "db_bytes_after": db_bytes, "cpus_allowed": len(os.sched_getaffinity(0)),
        "load_1m_end": round(os.getloadavg()[0], 2),
    }


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--samples", type=int, default=1_000_000, help="sampled requests in all (--ingest)")
    parser.add_argument("--batch-samples", type=int, default=500, help="requests per message (--ingest)")
    parser.add_argument("--deployments", type=int, default=2, help="deployments sending (--ingest)")
    parser.add_argument("--event-rate", type=float, default=5000.0,
                        help="samples per second of event time per deployment (--ingest)")
    parser.add_argument("--windows", default="2s,1m", help="window sizes (--ingest)")
    parser.add_argument("--grace-s", type=float, default=1.0, help="window grace (--ingest)")
    parser.add_argument("--profile", type=int, default=0, metavar="N",
                        help="cProfile the timed loop, print the top N (--ingest)")

