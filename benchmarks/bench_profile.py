"""Profile column statistics (cairn.core.profile.numeric_stats) vs the same numbers from numpy.

The issue's target: the profile of a 1M-row x 1,000-numeric-column table in well under 30 s on the
2-core machine with 2 threads. The data: ROWS x COLS float64 Arrow columns (normal, 1% nulls),
each with 11 non-uniform edges (quantiles of a sample, as a reference profile gives them).

* cairn - numeric_stats(columns, edges, threads=T): count, missing, min/max, mean/m2, the
          log-bucket sketch and the histogram in one pass over the Arrow buffers
* numpy - per column: mask, min, max, mean, var, log-bucket keys (ceil(log|x| / log gamma)) with
          bincount, searchsorted + bincount for the histogram; run on --numpy-cols columns and
          scaled to COLS (it is far slower)

Best of --repeat rounds; the figure for 1,000 columns is scaled linearly from COLS.

    python benchmarks/bench_profile.py                    # 1M x 200, 2 threads
    python benchmarks/bench_profile.py --rows 100000 --cols 50 --json
"""

from __future__ import annotations

import argparse
import json
import math
import time

import numpy as np
import pyarrow as pa

from cairn.core.profile import numeric_stats, sketch_gamma


def make_columns(rows: int, cols: int, seed: int = 1) -> tuple[list[pa.Array], list[np.ndarray]]:
    rng = np.random.default_rng(seed)
    columns, edges = [], []
    for c in range(cols):
        values = rng.normal(float(c), 1.0 + c % 7, rows)
        columns.append(pa.array(values, mask=rng.random(rows) < 0.01))
        edges.append(np.quantile(values[:10_000], np.linspace(0.0, 1.0, 11)))
    return columns, edges


def numpy_stats(column: pa.Array, edges: np.ndarray) -> tuple:
    values = column.to_numpy(zero_copy_only=False)
    x = values[np.isfinite(values)]
    mags = np.abs(x)
    keys = np.ceil(np.log(mags[mags >= 1e-12]) / math.log(sketch_gamma())).astype(np.int64)
    buckets = np.bincount(keys - keys.min()) if len(keys) else keys
    hist = np.bincount(np.searchsorted(edges, x, side="right"), minlength=len(edges) + 1)
    return len(x), x.min(), x.max(), x.mean(), x.var(), buckets, hist


def best_of(repeat: int, fn) -> float:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--cols", type=int, default=200)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--numpy-cols", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    columns, edges = make_columns(args.rows, args.cols)
    cairn_s = best_of(args.repeat, lambda: numeric_stats(columns, edges, threads=args.threads))
    k = min(args.numpy_cols, args.cols)
    numpy_s = best_of(
        args.repeat, lambda: [numpy_stats(c, e) for c, e in zip(columns[:k], edges[:k])]
    ) * (args.cols / k)
    values = args.rows * args.cols
    result = {
        "rows": args.rows,
        "cols": args.cols,
        "threads": args.threads,
        "cairn_s": round(cairn_s, 3),
        "numpy_s_scaled": round(numpy_s, 3),
        "numpy_over_cairn": round(numpy_s / cairn_s, 1),
        "cairn_values_per_s": round(values / cairn_s),
        "cairn_s_for_1M_x_1000": round(cairn_s * (1_000_000 / args.rows) * (1000 / args.cols), 1),
    }
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key:24} {value}")


if __name__ == "__main__":
    main()
