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

--gpu (a CUDA GPU and CuPy): the issue's device figure instead, a ROWS x COLS float32 table held on
the device (default 10M x 1,000, 40 GB; one Fortran-ordered CuPy array, so each column is
contiguous), every column with 11 edges. It reports the kernel's time (CUDA events, mean of
--repeat runs after a warm-up), the end-to-end numeric_stats(device="cuda") time (results back on
the host), the GB/s the kernel reads and its share of the device's memory bandwidth, computed from
the device's properties (2 x memory clock x bus width).

    python benchmarks/bench_profile.py                    # 1M x 200, 2 threads
    python benchmarks/bench_profile.py --rows 100000 --cols 50 --json
    python benchmarks/bench_profile.py --gpu --json       # 10M x 1,000 float32 on the GPU
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


def device_bandwidth_gbs(cp) -> tuple[str, float]:  # type: ignore[no-untyped-def]
    """(device name, peak memory bandwidth in GB/s) from the CUDA device properties."""
    props = cp.cuda.runtime.getDeviceProperties(cp.cuda.Device().id)
    name = props["name"].decode() if isinstance(props["name"], bytes) else str(props["name"])
    clock_khz = props.get("memoryClockRate") or cp.cuda.runtime.deviceGetAttribute(
        cp.cuda.runtime.cudaDevAttrMemoryClockRate, cp.cuda.Device().id
    )
    bus_bits = props.get("memoryBusWidth") or cp.cuda.runtime.deviceGetAttribute(
        cp.cuda.runtime.cudaDevAttrGlobalMemoryBusWidth, cp.cuda.Device().id
    )
    return name, 2.0 * clock_khz * 1e3 * (bus_bits / 8) / 1e9


def gpu_main(args: argparse.Namespace) -> dict:
    """The device-resident figure: ROWS x COLS float32 on the GPU."""
    import cupy as cp

    from cairn.core.profile_gpu import kernel_seconds

    rows, cols = args.rows, args.cols
    table = cp.empty((rows, cols), dtype=cp.float32, order="F")
    rng = cp.random.default_rng(1)
    for c in range(cols):  # column by column: no second table-sized temporary
        table[:, c] = rng.standard_normal(rows, dtype=cp.float32) * (1 + c % 7) + c
    columns = [table[:, c] for c in range(cols)]
    sample = cp.asnumpy(table[:10_000, :]).astype(np.float64)
    edges = [np.quantile(sample[:, c], np.linspace(0.0, 1.0, 11)) for c in range(cols)]
    kernel_s = kernel_seconds(columns, edges, alpha=0.005, repeats=args.repeat)
    end_to_end_s = best_of(args.repeat, lambda: numeric_stats(columns, edges, device="cuda"))
    name, peak = device_bandwidth_gbs(cp)
    nbytes = rows * cols * 4
    return {
        "device": name,
        "rows": rows,
        "cols": cols,
        "dtype": "float32",
        "bytes": nbytes,
        "kernel_s": round(kernel_s, 4),
        "end_to_end_s": round(end_to_end_s, 4),
        "kernel_gb_per_s": round(nbytes / kernel_s / 1e9, 1),
        "peak_gb_per_s": round(peak, 1),
        "share_of_bandwidth": round(nbytes / kernel_s / 1e9 / peak, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, help="default 1M (10M with --gpu)")
    parser.add_argument("--cols", type=int, help="default 200 (1,000 with --gpu)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--numpy-cols", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--gpu", action="store_true", help="the device figure (defaults 10M x 1,000)")
    parser.add_argument("--json-out", help="also write the result as JSON to this file")
    args = parser.parse_args()
    args.rows = args.rows or (10_000_000 if args.gpu else 1_000_000)
    args.cols = args.cols or (1000 if args.gpu else 200)
    if args.gpu:
        report(gpu_main(args), args.json, args.json_out)
        return
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
    report(result, args.json, args.json_out)


def report(result: dict, as_json: bool, path: str | None = None) -> None:
    if path:
        with open(path, "w") as f:
            json.dump(result, f)
    if as_json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key:24} {value}")


if __name__ == "__main__":
    main()
