"""Aggregation core vs pandas and DuckDB: count, sum, min, max, mean, var per segment.

The same data for every tool: N float64 values (no NaN, so that NaN-skipping pandas and
NaN-as-value DuckDB agree) with random int32 segment ids in [0, SEGMENTS). Measured:

* cairn, ids     - cairn.core.segment_reduce(values, segment_ids=ids) on the unsorted data
* cairn, offsets - the same data sorted by segment, given as CSR offsets (how the metrics store
                   lays out a run's points; the sort is not timed)
* pandas         - DataFrame({"k": ids, "v": values}).groupby("k")["v"].agg([...])
* duckdb         - SELECT k, count(v), sum(v), min(v), max(v), avg(v), var_samp(v) ... GROUP BY k
                   over the same Arrow table (zero-copy scan)

Tools run round-robin --repeat times and each one's best round counts (the machine may be shared);
every result is cross-checked against cairn's (max relative difference).

    python benchmarks/bench_aggregate.py                 # 100M values, 10k segments
    python benchmarks/bench_aggregate.py --n 10000000 --segments 1000 --json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from collections.abc import Callable
from typing import Any

import numpy as np

OPS = ("count", "sum", "min", "max", "mean", "var")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=100_000_000, help="number of values (default 1e8)")
    parser.add_argument(
        "--segments", type=int, default=10_000, help="number of segments (default 1e4)"
    )
    parser.add_argument(
        "--repeat", type=int, default=5, help="rounds; each tool's best round counts"
    )
    parser.add_argument(
        "--threads", type=int, default=None, help="cairn/duckdb threads (default: all cores)"
    )
    parser.add_argument(
        "--skip", nargs="*", default=[], choices=["pandas", "duckdb"], help="tools to skip"
    )
    parser.add_argument(
        "--json", action="store_true", help="print one JSON object instead of a table"
    )
    parser.add_argument(
        "--kernels", action="store_true", help="only time the other kernels (see kernel_timings)"
    )
    args = parser.parse_args()
    if args.kernels:
        kernel_timings(args.repeat, args.threads)
        return

    from cairn.core import segment_reduce

    rng = np.random.default_rng(2026)
    values = rng.standard_normal(args.n) * 100.0 + 1_000.0
    ids = rng.integers(0, args.segments, size=args.n, dtype=np.int32)
    order = np.argsort(ids, kind="stable")
    sorted_values = values[order]
    offsets = np.searchsorted(ids[order], np.arange(args.segments + 1)).astype(np.int64)
    del order

    # name -> (run, to {op: array}); tools run round-robin, so that a noisy neighbour on a shared
    # machine slows every tool alike, and the best round of each counts.
    tools: dict[str, tuple[Callable[[], Any], Callable[[Any], dict[str, np.ndarray]]]] = {
        "cairn, offsets": (
            lambda: segment_reduce(
                sorted_values, offsets=offsets, ops=OPS, ddof=1, threads=args.threads
            ),
            lambda r: r,
        ),
        "cairn, ids": (
            lambda: segment_reduce(
                values,
                segment_ids=ids,
                num_segments=args.segments,
                ops=OPS,
                ddof=1,
                threads=args.threads,
            ),
            lambda r: r,
        ),
    }
    if "pandas" not in args.skip:
        import pandas as pd

        frame = pd.DataFrame({"k": ids, "v": values})
        tools["pandas"] = (
            lambda: frame.groupby("k")["v"].agg(["count", "sum", "min", "max", "mean", "var"]),
            lambda r: {op: r[op].to_numpy() for op in OPS},
        )
    if "duckdb" not in args.skip:
        import duckdb
        import pyarrow as pa

        con = duckdb.connect()
        if args.threads:
            con.execute(f"SET threads = {int(args.threads)}")
        con.register("t", pa.table({"k": ids, "v": values}))
        sql = (
            "SELECT k, count(v) AS count, sum(v) AS sum, min(v) AS min, max(v) AS max, avg(v) AS mean, "
            "var_samp(v) AS var FROM t GROUP BY k ORDER BY k"
        )
        tools["duckdb"] = (
            lambda: con.execute(sql).fetchnumpy(),
            lambda r: {op: r[op] for op in OPS},
        )

    seconds = {name: float("inf") for name in tools}
    results: dict[str, dict[str, np.ndarray]] = {}
    for _ in range(args.repeat):
        for name, (run, convert) in tools.items():
            t0 = time.perf_counter()
            out = run()
            seconds[name] = min(seconds[name], time.perf_counter() - t0)
            results[name] = convert(out)
            del out

    max_rel_diff: dict[str, float] = {}
    for name, other in results.items():
        worst = 0.0
        for op in OPS:
            ref = np.asarray(results["cairn, ids"][op], dtype=np.float64)
            got = np.asarray(other[op], dtype=np.float64)
            worst = max(worst, float(np.max(np.abs(got - ref) / np.maximum(np.abs(ref), 1e-300))))
        max_rel_diff[name] = worst

    base = seconds["cairn, ids"]
    report = {
        "n": args.n,
        "segments": args.segments,
        "threads": args.threads or os.cpu_count(),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "seconds": seconds,
        "speedup_of_cairn_ids": {k: v / base for k, v in seconds.items()},
        "max_rel_diff_vs_cairn_ids": max_rel_diff,
    }
    if args.json:
        print(json.dumps(report, indent=2))
        return
    print(
        f"{args.n:,} float64 values, {args.segments:,} segments, ops {', '.join(OPS)} (var ddof=1), "
        f"best of {args.repeat} rounds"
    )
    print("ratio = tool seconds / cairn seconds (how many times faster cairn is)")
    print(
        f"{'tool':<16} {'seconds':>9} {'Mvalues/s':>10} {'/ cairn ids':>12} {'/ cairn offsets':>16} {'max rel diff':>13}"
    )
    for name, s in seconds.items():
        print(
            f"{name:<16} {s:9.3f} {args.n / s / 1e6:10.0f} {s / base:12.2f} {s / seconds['cairn, offsets']:16.2f}"
            f" {max_rel_diff.get(name, 0.0):13.1e}"
        )


def kernel_timings(repeat: int, threads: int | None) -> None:
    """Best-of-`repeat` seconds for the chart and drift kernels on typical metric sizes."""
    import pandas as pd

    from cairn.core import downsample_minmax, lttb, rolling, segment_histogram, segment_quantiles

    rng = np.random.default_rng(7)
    series = np.cumsum(rng.standard_normal(1_000_000))
    steps = np.arange(len(series), dtype=np.int64)
    values = rng.standard_normal(10_000_000)
    offsets = np.linspace(0, len(values), 1_001).astype(np.int64)
    ids = np.repeat(np.arange(1_000), 10_000)
    edges = np.linspace(-4, 4, 21)

    def timed(fn: Callable[[], Any]) -> float:
        best = float("inf")
        for _ in range(repeat):
            t0 = time.perf_counter()
            fn()
            best = min(best, time.perf_counter() - t0)
        return best

    rows = [
        (
            "downsample_minmax 1M -> 1,000",
            timed(lambda: downsample_minmax(steps, series, 1_000)),
            None,
        ),
        ("lttb 1M -> 1,000", timed(lambda: lttb(steps, series, 1_000)), None),
        (
            "quantiles 0.5,0.9,0.99 10M/1k seg",
            timed(
                lambda: segment_quantiles(
                    values, [0.5, 0.9, 0.99], offsets=offsets, threads=threads
                )
            ),
            timed(
                lambda: (
                    pd.DataFrame({"k": ids, "v": values})
                    .groupby("k")["v"]
                    .quantile([0.5, 0.9, 0.99])
                )
            ),
        ),
        (
            "rolling mean/std/min/max w=100 10M",
            timed(lambda: rolling(values, 100, ops=("mean", "std", "min", "max"), threads=threads)),
            timed(
                lambda: (
                    pd.Series(values).rolling(100, min_periods=1).agg(["mean", "std", "min", "max"])
                )
            ),
        ),
        (
            "histogram 20 bins 10M/1k seg",
            timed(lambda: segment_histogram(values, edges, offsets=offsets, threads=threads)),
            None,
        ),
    ]
    print(f"{'kernel':<36} {'cairn s':>9} {'pandas s':>9} {'ratio':>7}")
    for name, ours, theirs in rows:
        extra = (
            f"{theirs:9.3f} {theirs / ours:7.1f}" if theirs is not None else f"{'-':>9} {'-':>7}"
        )
        print(f"{name:<36} {ours:9.4f} {extra}")


if __name__ == "__main__":
    main()
