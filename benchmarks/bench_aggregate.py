"""Aggregation core vs pandas and DuckDB: count, sum, min, max, mean, var per segment.

The same data for every tool: N float64 values (no NaN, so that NaN-skipping pandas and
NaN-as-value DuckDB agree) with random int32 segment ids in [0, SEGMENTS). Measured:

* cairn, ids     - cairn.core.segment_reduce(values, segment_ids=ids) on the unsorted data
* cairn, offsets - the same data sorted by segment, given as CSR offsets (how the metrics store
                   lays out a run's points; the sort is not timed)
* pandas         - DataFrame({"k": ids, "v": values}).groupby("k")["v"].agg([...])
* duckdb         - SELECT k, count(v), sum(v), min(v), max(v), avg(v), var_samp(v) ... GROUP BY k
                   over the same Arrow table (zero-copy scan)

Each timing is the best of --repeat runs; results are cross-checked against pandas.

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


def best_of(repeat: int, fn: Callable[[], Any]) -> tuple[float, Any]:
    best, result = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t0)
    return best, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=100_000_000, help="number of values (default 1e8)")
    parser.add_argument("--segments", type=int, default=10_000, help="number of segments (default 1e4)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per tool; the best counts")
    parser.add_argument("--threads", type=int, default=None, help="cairn/duckdb threads (default: all cores)")
    parser.add_argument("--skip", nargs="*", default=[], choices=["pandas", "duckdb"], help="tools to skip")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    args = parser.parse_args()

    from cairn.core import segment_reduce

    rng = np.random.default_rng(2026)
    values = rng.standard_normal(args.n) * 100.0 + 1_000.0
    ids = rng.integers(0, args.segments, size=args.n, dtype=np.int32)
    order = np.argsort(ids, kind="stable")
    sorted_values = values[order]
    offsets = np.searchsorted(ids[order], np.arange(args.segments + 1)).astype(np.int64)
    del order

    seconds: dict[str, float] = {}
    seconds["cairn, offsets"], by_offsets = best_of(
        args.repeat, lambda: segment_reduce(sorted_values, offsets=offsets, ops=OPS, ddof=1, threads=args.threads)
    )
    seconds["cairn, ids"], by_ids = best_of(
        args.repeat,
        lambda: segment_reduce(values, segment_ids=ids, num_segments=args.segments, ops=OPS, ddof=1, threads=args.threads),
    )
    del sorted_values
    max_rel_diff: dict[str, float] = {}

    def compare(name: str, other: dict[str, np.ndarray]) -> None:
        worst = 0.0
        for op in OPS:
            ref, got = np.asarray(by_ids[op], dtype=np.float64), np.asarray(other[op], dtype=np.float64)
            worst = max(worst, float(np.max(np.abs(got - ref) / np.maximum(np.abs(ref), 1e-300))))
        max_rel_diff[name] = worst

    compare("cairn, offsets", by_offsets)

    if "pandas" not in args.skip:
        import pandas as pd

        frame = pd.DataFrame({"k": ids, "v": values})
        seconds["pandas"], agg = best_of(
            args.repeat, lambda: frame.groupby("k")["v"].agg(["count", "sum", "min", "max", "mean", "var"])
        )
        compare("pandas", {op: agg[op].to_numpy() for op in OPS})
        del frame

    if "duckdb" not in args.skip:
        import duckdb
        import pyarrow as pa

        con = duckdb.connect()
        if args.threads:
            con.execute(f"SET threads = {int(args.threads)}")
        table = pa.table({"k": ids, "v": values})
        con.register("t", table)
        sql = (
            "SELECT k, count(v) AS count, sum(v) AS sum, min(v) AS min, max(v) AS max, avg(v) AS mean, "
            "var_samp(v) AS var FROM t GROUP BY k ORDER BY k"
        )
        seconds["duckdb"], res = best_of(args.repeat, lambda: con.execute(sql).fetchnumpy())
        compare("duckdb", {op: res[op] for op in OPS})

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
    print(f"{args.n:,} float64 values, {args.segments:,} segments, ops {', '.join(OPS)} (var ddof=1)")
    print(f"{'tool':<16} {'seconds':>9} {'Mvalues/s':>10} {'x cairn ids':>12} {'x cairn offsets':>16} {'max rel diff':>13}")
    for name, s in seconds.items():
        print(
            f"{name:<16} {s:9.3f} {args.n / s / 1e6:10.0f} {s / base:12.2f} {s / seconds['cairn, offsets']:16.2f}"
            f" {max_rel_diff.get(name, 0.0):13.1e}"
        )


if __name__ == "__main__":
    main()
