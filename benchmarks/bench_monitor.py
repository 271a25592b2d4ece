"""Monitor benchmark: profile + drift of wide numeric tables, alone and side by side with Evidently.

Data: ROWS x COLS float32 columns from a seeded generator, built in memory as Arrow one column at a
time (so building costs the table plus one column). Column c is normal (loc c % 7, scale
1 + c % 3) or, for c % 4 == 3, log-normal (skewed). The current table is a second draw of the
same distributions, except the shifted columns: c % 50 == 1 has its mean moved by half a standard
deviation, c % 50 == 2 its spread doubled (2 of every 50 columns drift; with 5 columns, 1 and 2).
The reference table has ``--ref-rows`` rows (default: ROWS for --versus-evidently, 200,000 for
--big) and another seed.

``--big`` (issue 20: 1M x 1,000, under 60 s on the 2-core machine, memory under 2x the table's
Arrow size): the reference profile is computed first and NOT timed (the monitor keeps it, a
registered profile); the reference table is then dropped and the current table built. Timed:
``profile_table(current, reference=ref)`` (one pass, the reference's histogram edges) and
``dataset_drift(ref, cur)``. Memory: after the table is built the process's RSS high-water mark
(VmHWM) is reset by writing 5 to /proc/self/clear_refs, so VmHWM read after the step is the peak
RSS *during* the step; the step's extra memory is that peak minus the RSS just before it (the
table, the interpreter, the reference profile). Where clear_refs is not writable a thread
samples RSS every 5 ms instead (and says so).

``--versus-evidently`` (issue 20: >= 50x faster than Evidently with the same tests and
thresholds): Evidently 0.7.23 ``Report([DataDriftPreset()])`` (or ``--evidently-api
value-drift``: one ``ValueDrift`` per column) on pandas DataFrames of the same numbers; its
default tests are Cairn's defaults (Evidently's rule: K-S p-value < 0.05 up to 1,000 reference
values, else Wasserstein distance normed by the reference std >= 0.1). Timed on Evidently's side:
``Dataset.from_pandas`` of both frames + ``report.run`` + reading the per-column results from the
snapshot. Timed on Cairn's side, the fair comparison: both profiles from the raw Arrow tables
(reference with its own equal-mass edges, current on the reference's edges) + ``dataset_drift``;
printed separately: Cairn with the reference profile precomputed (current profile + drift, what
the monitor does per window), and one more run split into its three steps (reference profile,
current profile, drift). Converting the numbers to pandas / Arrow is not timed on either
side. The per-column decisions of both are compared and the agreeing count printed. Cairn uses
``--threads`` (default: the core's pool, all cores); Evidently runs on one core.

    python benchmarks/bench_monitor.py --versus-evidently                  # 100k x 100
    python benchmarks/bench_monitor.py --big                               # 1M x 1,000 (~4 GB)
    python benchmarks/bench_monitor.py --big --rows 100000 --cols 100      # develop
    python benchmarks/bench_monitor.py --versus-evidently --rows 2000 --cols 5 --json

``--ingest`` (issue 20: >= 200,000 sampled predictions/s per core into windows): the monitor
service's ingest path on replica-encoded sample messages, without NATS; what is timed is in
benchmarks/monitor_ingest.py's docstring.

    python benchmarks/bench_monitor.py --ingest                            # 1M samples, 2s,1m windows
    python benchmarks/bench_monitor.py --ingest --samples 100000 --profile 30
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import pyarrow as pa

from cairn.monitor import Profile, profile_table
from cairn.monitor.drift import DatasetDrift, dataset_drift

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from evidently_peer import evidently_decisions, import_evidently  # noqa: E402
from monitor_ingest import add_arguments, run_ingest  # noqa: E402

EVIDENTLY_METHODS = {"ks": "K-S p_value", "wasserstein": "Wasserstein distance (normed)"}


def column_values(rng: np.random.Generator, rows: int, c: int, shifted: bool) -> np.ndarray:
    """One float32 column of the family described in the module docstring."""
    scale = 1.0 + c % 3
    drift = shifted and c % 50 in (1, 2)
    z = rng.standard_normal(rows, dtype=np.float32)
    if drift and c % 50 == 2:
        z *= 2.0
    if drift and c % 50 == 1:
        z += 0.5
    if c % 4 == 3:
        return np.exp(0.5 * z, dtype=np.float32) * np.float32(scale)
    z *= np.float32(scale)
    z += np.float32(c % 7)
    return z


def expected_drift(cols: int) -> set[str]:
    return {f"c{c}" for c in range(cols) if c % 50 in (1, 2)}


def build_table(rows: int, cols: int, seed: int, shifted: bool) -> pa.Table:
    """A ROWS x COLS float32 Arrow table, one column at a time (one chunk per column)."""
    rng = np.random.default_rng(seed)
    arrays = [pa.array(column_values(rng, rows, c, shifted)) for c in range(cols)]
    return pa.table(arrays, names=[f"c{c}" for c in range(cols)])


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _hwm_bytes() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


@contextmanager
def peak_rss() -> Iterator[dict[str, Any]]:
    """Peak RSS of the process while the block runs: VmHWM after resetting it, else sampling."""
    result: dict[str, Any] = {"before": rss_bytes()}
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        result["how"] = "VmHWM reset via /proc/self/clear_refs"
        yield result
        result["peak"] = _hwm_bytes()
        return
    except OSError:
        pass
    result["how"] = "RSS sampled every 5 ms"
    done = threading.Event()
    peak = [result["before"]]

    def sample() -> None:
        while not done.wait(0.005):
            peak[0] = max(peak[0], rss_bytes())
    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        yield result
    finally:
        done.set()
        sampler.join()
        result["peak"] = max(peak[0], rss_bytes())


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    value = fn()
    return time.perf_counter() - start, value


def best_of(repeat: int, fn: Callable[[], Any]) -> tuple[float, Any]:
    runs = [timed(fn) for _ in range(max(1, repeat))]
    return min(r[0] for r in runs), runs[-1][1]


def machine() -> dict[str, Any]:
    return {"date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "cpus": os.cpu_count(), "machine": platform.machine(),
            "processor": _cpu_name(), "load_1m_start": round(os.getloadavg()[0], 2)}


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def reference_profile(rows: int, args: argparse.Namespace) -> Profile:
    return profile_table(build_table(rows, args.cols, args.seed + 1, shifted=False),
                         threads=args.threads)


def run_big(args: argparse.Namespace) -> dict[str, Any]:
    ref_rows = args.ref_rows or min(args.rows, 200_000)
    ref_s, ref = timed(lambda: reference_profile(ref_rows, args))  # its table is freed on return
    build_s, table = timed(lambda: build_table(args.rows, args.cols, args.seed, shifted=True))
    table_bytes = table.nbytes
    with peak_rss() as memory:
        profile_s, cur = timed(lambda: profile_table(table, reference=ref, threads=args.threads))
        drift_s, drift = timed(lambda: dataset_drift(ref, cur))
    extra = memory["peak"] - memory["before"]
    total = profile_s + drift_s
    found = {c.column for c in drift.columns if c.drifted}
    return {
        "mode": "big", "rows": args.rows, "cols": args.cols, "ref_rows": ref_rows,
        "threads": args.threads, "table_bytes": table_bytes,
        "untimed_reference_profile_s": round(ref_s, 3), "untimed_build_s": round(build_s, 3),
        "profile_s": round(profile_s, 3), "drift_s": round(drift_s, 3),
        "profile_plus_drift_s": round(total, 3), "target_s": 60,
        "rss_before_step_bytes": memory["before"], "rss_peak_in_step_bytes": memory["peak"],
        "step_extra_bytes": extra, "step_extra_over_table": round(extra / table_bytes, 4),
        "peak_over_table": round(memory["peak"] / table_bytes, 3), "memory_how": memory["how"],
        "drifted_columns": drift.drifted_columns,
        "drifted_as_generated": found == expected_drift(args.cols),
        "load_1m_end": round(os.getloadavg()[0], 2),
    }


def cairn_decisions(drift: DatasetDrift) -> dict[str, tuple[str, bool]]:
    return {c.column: (EVIDENTLY_METHODS.get(c.method, c.method), c.drifted) for c in drift.columns}


def run_versus(args: argparse.Namespace) -> dict[str, Any]:
    evidently = import_evidently()
    ref_rows = args.ref_rows or args.rows
    reference_table = build_table(ref_rows, args.cols, args.seed + 1, shifted=False)
    current_table = build_table(args.rows, args.cols, args.seed, shifted=True)
    reference_frame = reference_table.to_pandas()
    current_frame = current_table.to_pandas()

    def cairn_full() -> tuple[Profile, DatasetDrift]:
        ref = profile_table(reference_table, threads=args.threads)
        cur = profile_table(current_table, reference=ref, threads=args.threads)
        return ref, dataset_drift(ref, cur)

    cairn_s, (ref, drift) = best_of(args.repeat, cairn_full)
    cairn_window_s, window_drift = best_of(args.repeat, lambda: dataset_drift(
        ref, profile_table(current_table, reference=ref, threads=args.threads)))
    evidently_s, theirs = best_of(args.evidently_repeat, lambda: evidently_decisions(
        reference_frame, current_frame, numerical=list(reference_frame.columns), api=args.evidently_api))
    ref_s, _ = timed(lambda: profile_table(reference_table, threads=args.threads))
    cur_s, cur = timed(lambda: profile_table(current_table, reference=ref, threads=args.threads))
    drift_s, _ = timed(lambda: dataset_drift(ref, cur))
    ours = cairn_decisions(drift)
    agree = sum(1 for c in ours if c in theirs and ours[c] == theirs[c])
    disagree = sorted(c for c in set(ours) | set(theirs) if ours.get(c) != theirs.get(c))
    return {
        "mode": "versus-evidently", "rows": args.rows, "ref_rows": ref_rows, "cols": args.cols,
        "threads": args.threads, "evidently": evidently.__version__,
        "evidently_api": "DataDriftPreset" if args.evidently_api == "preset" else "ValueDrift x cols",
        "evidently_s": round(evidently_s, 3),
        "cairn_both_profiles_plus_drift_s": round(cairn_s, 4),
        "ratio_evidently_over_cairn": round(evidently_s / cairn_s, 1), "target_ratio": 50,
        "cairn_precomputed_reference_s": round(cairn_window_s, 4),
        "cairn_split_reference_current_drift_s": [round(ref_s, 4), round(cur_s, 4),
                                                  round(drift_s, 4)],
        "ratio_evidently_over_cairn_precomputed": round(evidently_s / cairn_window_s, 1),
        "methods": sorted({m for m, _ in ours.values()}),
        "decisions_agree": agree, "decisions_total": len(ours), "disagreeing_columns": disagree,
        "cairn_drifted": sorted(c for c, (_, d) in ours.items() if d),
        "evidently_drifted": sorted(c for c, (_, d) in theirs.items() if d),
        "drifted_as_generated": {c for c, (_, d) in ours.items() if d} == expected_drift(args.cols),
        "same_decisions_with_precomputed_reference":
            cairn_decisions(window_drift) == ours,
        "load_1m_end": round(os.getloadavg()[0], 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--big", action="store_true", help="profile + drift of a wide table alone")
    mode.add_argument("--versus-evidently", action="store_true", help="side by side with Evidently")
    mode.add_argument("--ingest", action="store_true", help="the monitor service's ingest path")
    parser.add_argument("--rows", type=int, help="current rows (1,000,000 --big; 100,000 versus)")
    parser.add_argument("--cols", type=int, help="columns (1,000 --big; 100 versus)")
    parser.add_argument("--ref-rows", type=int, help="reference rows (default in the docstring)")
    parser.add_argument("--threads", type=int, default=None, help="Cairn's threads (default: all)")
    parser.add_argument("--repeat", type=int, default=3, help="Cairn runs, best taken (versus)")
    parser.add_argument("--evidently-repeat", type=int, default=1)
    parser.add_argument("--evidently-api", choices=["preset", "value-drift"], default="preset")
    parser.add_argument("--seed", type=int, default=20)
    parser.add_argument("--json", action="store_true", help="one JSON object instead of lines")
    add_arguments(parser)
    args = parser.parse_args()
    for name, value in (("rows", args.rows), ("cols", args.cols), ("ref_rows", args.ref_rows),
                        ("samples", args.samples), ("batch_samples", args.batch_samples),
                        ("deployments", args.deployments)):
        if value is not None and value < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1, got {value}")
    args.rows = args.rows or (1_000_000 if args.big else 100_000)
    args.cols = args.cols or (1000 if args.big else 100)
    if args.event_rate <= 0:
        parser.error(f"--event-rate must be above 0, got {args.event_rate}")
    info = machine()
    run = run_big if args.big else run_ingest if args.ingest else run_versus
    result = {**info, **run(args)}
    if args.json:
        print(json.dumps(result))
        return
    for key, value in result.items():
        print(f"{key:40} {value}")
    if args.versus_evidently:  # the line the smoke test reads
        print(f"decisions agree: {result['decisions_agree']}/{result['decisions_total']}")


if __name__ == "__main__":
    main()
