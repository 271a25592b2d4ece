"""GPU benchmarks of the core: BLAKE3 (device, host pinned/pageable, file) and segmented reductions.

Each figure is set beside the ceiling it is bounded by, measured in the same run on the same card:
device copy bandwidth (bytes read + written per second), pinned host->device copy bandwidth.
Prints one JSON summary (also written to --json after every section, so a killed run keeps what it
measured). Needs CuPy and a GPU; sections that fail record their error and the rest go on.

    python benchmarks/bench_gpu.py --json bench.json [--budget-s 120] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

import numpy as np

GiB = 1 << 30
MiB = 1 << 20


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", default=None, help="write the summary here too")
    parser.add_argument("--budget-s", type=float, default=120.0, help="skip sections past this")
    parser.add_argument("--quick", action="store_true", help="small sizes (smoke test)")
    parser.add_argument(
        "--sections", default="", help="comma-separated sections to run (default: all; device_copy always)"
    )
    args = parser.parse_args()

    try:
        import cupy

        import cairn.core
        from cairn import _core
    except ImportError as exc:  # still leave a report behind
        report = {"error": f"cannot run the GPU benchmarks: {exc}"}
        if args.json:
            with open(args.json, "w") as f:
                json.dump(report, f)
        print(json.dumps(report))
        return 2

    start = time.perf_counter()
    info = cairn.core.build_info()
    results: dict[str, Any] = {"card": info.get("gpu_name"), "build_info": info, "sections": {}}
    scale = 1 / 64 if args.quick else 1.0

    def save() -> None:
        text = json.dumps(results, indent=1, default=str)
        if args.json:
            tmp = args.json + ".tmp"
            with open(tmp, "w") as f:
                f.write(text)
            os.replace(tmp, args.json)

    chosen = {name for name in args.sections.split(",") if name} | {"device_copy"}

    def section(name: str, fn: Callable[[], dict[str, Any]]) -> None:
        elapsed = time.perf_counter() - start
        if args.sections and name not in chosen:
            return
        if elapsed > args.budget_s:
            results["sections"][name] = {"skipped": f"time budget spent ({elapsed:.0f}s)"}
        else:
            t0 = time.perf_counter()
            try:
                results["sections"][name] = fn()
            except Exception as exc:  # noqa: BLE001 - a failing section must not hide the others
                results["sections"][name] = {"error": f"{type(exc).__name__}: {exc}"}
            results["sections"][name]["section_s"] = round(time.perf_counter() - t0, 2)
            cupy.get_default_memory_pool().free_all_blocks()
            cupy.get_default_pinned_memory_pool().free_all_blocks()
        print(name, json.dumps(results["sections"][name], default=str), flush=True)
        save()

    def gpu_seconds(fn: Callable[[], Any], repeats: int) -> float:
        """Mean seconds of fn on the current stream after one warm-up, by CUDA events."""
        fn()
        begin, end = cupy.cuda.Event(), cupy.cuda.Event()
        begin.record()
        for _ in range(repeats):
            fn()
        end.record()
        end.synchronize()
        return cupy.cuda.get_elapsed_time(begin, end) / 1e3 / repeats

    def wall_seconds(fn: Callable[[], Any], repeats: int) -> float:
        fn()
        t0 = time.perf_counter()
        for _ in range(repeats):
            fn()
        return (time.perf_counter() - t0) / repeats

    ceilings: dict[str, float] = {}

    # -- ceilings ------------------------------------------------------------------------------
    def device_copy() -> dict[str, Any]:
        n = int(4 * GiB * scale)
        src = cupy.ones(n, dtype=cupy.uint8)
        dst = cupy.empty_like(src)
        s = gpu_seconds(lambda: cupy.copyto(dst, src), 10)
        ceilings["device_copy_GBps"] = 2 * n / s / 1e9
        return {"bytes": n, "read_plus_write_GBps": round(2 * n / s / 1e9, 1)}

    def host_to_device_copy() -> dict[str, Any]:
        n = int(4 * GiB * scale)
        pinned = cupy.cuda.alloc_pinned_memory(n)
        dev = cupy.empty(n, dtype=cupy.uint8)
        host = np.frombuffer(pinned, np.uint8, n)
        host[:] = 1
        s = wall_seconds(lambda: (dev.set(host), cupy.cuda.Device().synchronize()), 3)
        ceilings["pinned_h2d_GBps"] = n / s / 1e9
        pageable = np.ones(n, dtype=np.uint8)
        s2 = wall_seconds(lambda: (dev.set(pageable), cupy.cuda.Device().synchronize()), 1)
        ceilings["pageable_h2d_GBps"] = n / s2 / 1e9
        return {
            "bytes": n,
            "pinned_GBps": round(n / s / 1e9, 1),
            "pageable_GBps": round(n / s2 / 1e9, 1),
        }

    section("device_copy", device_copy)
    section("host_to_device_copy", host_to_device_copy)

    # -- BLAKE3 ----------------------------------------------------------------------------------
    def blake3_device() -> dict[str, Any]:
        out: dict[str, Any] = {}
        for label, n, reps in (("1GiB", GiB, 10), ("8GiB", 8 * GiB, 3)):
            n = int(n * scale)
            data = cupy.empty(n, dtype=cupy.uint8)
            data[:] = 0x5A
            s = _core.blake3_cuda_device_seconds(data.data.ptr, n, reps)
            digest_t0 = time.perf_counter()
            cairn.core.blake3_gpu(data)
            out[label] = {
                "bytes": n,
                "TBps": round(n / s / 1e12, 3),
                "kernel_ms": round(s * 1e3, 3),
                "python_call_ms": round((time.perf_counter() - digest_t0) * 1e3, 3),
            }
            del data
            cupy.get_default_memory_pool().free_all_blocks()
        out["target_TBps"] = 1.2
        return out

    def blake3_host() -> dict[str, Any]:
        n = int(4 * GiB * scale)
        pinned_mem = cupy.cuda.alloc_pinned_memory(n)
        pinned = np.frombuffer(pinned_mem, np.uint8, n)
        pinned[:] = 0x33
        s = wall_seconds(lambda: cairn.core.blake3_gpu(pinned), 3)
        pageable = np.full(n, 0x33, dtype=np.uint8)
        s2 = wall_seconds(lambda: cairn.core.blake3_gpu(pageable), 2)
        h2d = ceilings.get("pinned_h2d_GBps")
        out = {
            "bytes": n,
            "pinned_GBps": round(n / s / 1e9, 1),
            "pageable_GBps": round(n / s2 / 1e9, 1),
            "target_GBps": 40,
        }
        if h2d:
            out["pinned_pct_of_h2d_copy"] = round(100 * n / s / 1e9 / h2d, 1)
        if hasattr(cairn.core, "blake3"):  # the CPU path, where this build has it
            try:
                s3 = wall_seconds(lambda: cairn.core.blake3(pageable), 2)
                out["cpu_blake3_GBps"] = round(n / s3 / 1e9, 1)
            except Exception as exc:  # noqa: BLE001 - keep the GPU figures
                out["cpu_blake3_error"] = f"{type(exc).__name__}: {exc}"
        return out

    def blake3_file() -> dict[str, Any]:
        n = int(3 * GiB * scale)
        with tempfile.NamedTemporaryFile(dir="/tmp", prefix="cairn-bench-", delete=False) as f:
            path = f.name
        try:
            block = np.random.default_rng(1).integers(0, 256, size=64 << 20, dtype=np.uint8)
            with open(path, "wb") as f:
                f.writelines(block.data for _ in range(n // block.size))
                f.write(block.data[: n % block.size])
            s = wall_seconds(lambda: cairn.core.blake3_gpu_file(path), 2)
            out = {"bytes": n, "page_cache_GBps": round(n / s / 1e9, 1)}
            if hasattr(cairn.core, "fingerprint_file"):
                try:
                    s2 = wall_seconds(lambda: cairn.core.fingerprint_file(path), 2)
                    out["cpu_fingerprint_file_GBps"] = round(n / s2 / 1e9, 1)
                except Exception as exc:  # noqa: BLE001 - keep the GPU figures
                    out["cpu_fingerprint_file_error"] = f"{type(exc).__name__}: {exc}"
            return out
        finally:
            os.unlink(path)

    def blake3_sizes() -> dict[str, Any]:
        """Per-call wall time by size, for the cpu/cuda crossover of device="auto"."""
        out: dict[str, Any] = {}
        for log2 in (12, 16, 20, 24, 28):
            n = 1 << log2
            host = np.full(n, 7, dtype=np.uint8)
            dev = cupy.asarray(host)
            reps = 20 if log2 <= 20 else 3
            row = {
                "device_us": round(
                    wall_seconds(lambda d=dev: cairn.core.blake3_gpu(d), reps) * 1e6, 1
                ),
                "host_us": round(
                    wall_seconds(lambda h=host: cairn.core.blake3_gpu(h), reps) * 1e6, 1
                ),
            }
            if hasattr(cairn.core, "blake3"):
                try:
                    cpu = wall_seconds(lambda h=host: cairn.core.blake3(h, device="cpu"), reps)
                    row["cpu_us"] = round(cpu * 1e6, 1)
                    # what device="auto" does below its threshold: copy to the host, hash there
                    back = wall_seconds(lambda d=dev: cairn.core.blake3(d, device="cpu"), reps)
                    row["device_to_cpu_us"] = round(back * 1e6, 1)
                except Exception as exc:  # noqa: BLE001 - keep the GPU figures
                    row["cpu_error"] = f"{type(exc).__name__}: {exc}"
            out[f"2^{log2}"] = row
        return out

    section("blake3_device", blake3_device)
    section("blake3_sizes", blake3_sizes)
    section("blake3_host", blake3_host)
    section("blake3_file", blake3_file)

    # -- segmented reductions ---------------------------------------------------------------------
    def segment_reduce() -> dict[str, Any]:
        from cairn.core import gpu

        if not hasattr(gpu, "segment_reduce_gpu"):
            return {"skipped": "segment_reduce_gpu is not in this build"}
        n = int(1_000_000_000 * scale)
        values = cupy.random.random(n, dtype=cupy.float32)
        out: dict[str, Any] = {
            "values": n,
            "dtype": "float32",
            "path": "default: float4 loads (tiles and short-segment groups)",
        }
        copy = ceilings.get("device_copy_GBps")
        for nseg in (1_000, 10_000_000):
            nseg = min(nseg, n)
            offsets = cupy.linspace(0, n, nseg + 1).astype(cupy.int64)
            s = gpu_seconds(lambda o=offsets: gpu.segment_reduce_gpu(values, o, out="cupy"), 3)
            # Bytes moved: values and offsets read, seven nseg-long outputs written.
            moved = n * 4 + (nseg + 1) * 8 + 7 * 8 * nseg
            entry = {
                "ms": round(s * 1e3, 3),
                "values_GBps": round(n * 4 / s / 1e9, 1),
                "moved_GBps": round(moved / s / 1e9, 1),
            }
            if copy:
                entry["pct_of_device_copy"] = round(100 * moved / s / 1e9 / copy, 1)
            out[f"{nseg}_segments"] = entry
        out["target_pct_of_device_copy"] = 60
        return out

    section("segment_reduce", segment_reduce)

    # -- fingerprint_tree: a tree of large files in the page cache, CPU vs GPU ---------------------
    def fingerprint_tree() -> dict[str, Any]:
        files, size = 8, int(512 * MiB * scale)
        root = tempfile.mkdtemp(dir="/tmp", prefix="cairn-bench-tree-")
        try:
            rng = np.random.default_rng(2)
            block = rng.integers(0, 256, size=min(size, 64 << 20), dtype=np.uint8)
            for i in range(files):
                with open(os.path.join(root, f"part-{i}.bin"), "wb") as f:
                    for k in range(size // block.size):
                        # distinct contents per block and file
                        block[:8] = np.array([k + i * 1000], dtype="<i8").view(np.uint8)
                        f.write(block.data)
                    f.write(block.data[: size % block.size])
            total = files * size
            cpu = wall_seconds(lambda: cairn.core.fingerprint_tree(root, device="cpu"), 2)
            gpu_s = wall_seconds(lambda: cairn.core.fingerprint_tree(root, device="cuda"), 2)
            same = (
                cairn.core.fingerprint_tree(root, device="cpu").digest
                == cairn.core.fingerprint_tree(root, device="cuda").digest
            )
            return {
                "files": files,
                "bytes": total,
                "cpu_GBps": round(total / cpu / 1e9, 1),
                "cuda_GBps": round(total / gpu_s / 1e9, 1),
                "same_digest": same,
            }
        finally:
            shutil.rmtree(root, ignore_errors=True)

    section("fingerprint_tree", fingerprint_tree)

    # -- charts and histograms: GPU (device-resident input) vs CPU (NumPy input) -----------------
    def charts() -> dict[str, Any]:
        from cairn.core import downsample_minmax, lttb, segment_histogram

        n = int(100_000_000 * scale)
        rng = np.random.default_rng(3)
        x = np.arange(n, dtype=np.float64)
        y = rng.standard_normal(n)
        gx, gy = cupy.asarray(x), cupy.asarray(y)
        edges = np.linspace(-4, 4, 101)
        offsets = np.linspace(0, n, 1001).astype(np.int64)
        goffsets = cupy.asarray(offsets)
        out: dict[str, Any] = {"points": n}
        cases = {
            "downsample_minmax_3000": (
                lambda: downsample_minmax(gx, gy, 3000),
                lambda: downsample_minmax(x, y, 3000),
            ),
            "lttb_3000": (lambda: lttb(gx, gy, 3000), lambda: lttb(x, y, 3000)),
            "histogram_1000seg_100bins": (
                lambda: segment_histogram(gy, edges, offsets=goffsets),
                lambda: segment_histogram(y, edges, offsets=offsets),
            ),
        }
        for name, (on_gpu, on_cpu) in cases.items():
            g = wall_seconds(on_gpu, 3)
            c = wall_seconds(on_cpu, 2)
            got, expected = on_gpu(), on_cpu()
            if not isinstance(expected, tuple):
                got, expected = (got,), (expected,)
            same = all(np.array_equal(cupy.asnumpy(a), b) for a, b in zip(got, expected))
            out[name] = {"gpu_ms": round(g * 1e3, 2), "cpu_ms": round(c * 1e3, 2), "same": same}
        return out

    section("charts", charts)

    # -- segment_quantiles: GPU (device-resident input) vs CPU (NumPy input), identical values ----
    def quantiles() -> dict[str, Any]:
        from cairn.core import segment_quantiles

        n = int(10_000_000 * scale)
        rng = np.random.default_rng(4)
        values = rng.standard_normal(n)
        values[rng.random(n) < 0.01] = np.nan
        qs = [0.5, 0.9, 0.99]
        out: dict[str, Any] = {"values": n, "q": qs}
        for nseg in (1_000, 100_000):
            offsets = np.linspace(0, n, nseg + 1).astype(np.int64)
            gv, go = cupy.asarray(values), cupy.asarray(offsets)
            g = gpu_seconds(lambda gv=gv, go=go: segment_quantiles(gv, qs, offsets=go), 3)
            c = wall_seconds(lambda o=offsets: segment_quantiles(values, qs, offsets=o), 2)
            same = bool(
                np.array_equal(
                    cupy.asnumpy(segment_quantiles(gv, qs, offsets=go)),
                    segment_quantiles(values, qs, offsets=offsets),
                    equal_nan=True,
                )
            )
            out[f"{nseg}_segments"] = {
                "gpu_ms": round(g * 1e3, 2),
                "cpu_ms": round(c * 1e3, 2),
                "same": same,
            }
        return out

    section("segment_quantiles", quantiles)

    # -- segment reduce, kernel variants side by side (environment switches read per call): tiles
    # and short-segment groups with scalar loads (CAIRN_GPU_SEGMENT_VECTOR_LOADS=0) or float4 (the
    # default); for short segments also one group per segment instead of the resident grid, no
    # register bound (default: 3 blocks per SM), groups sized for 32 values per lane (default 64),
    # and 4 loads in flight per lane (default 8).
    # Last: a fault cannot hide the sections above ----------------------------------------------
    def segment_reduce_paths() -> dict[str, Any]:
        from cairn.core import gpu

        n = int(1_000_000_000 * scale)
        values = cupy.random.random(n, dtype=cupy.float32)
        variants: dict[str, dict[str, str]] = {
            "default": {},
            "scalar_loads": {"CAIRN_GPU_SEGMENT_VECTOR_LOADS": "0"},
        }
        short_variants: dict[str, dict[str, str]] = {
            "full_grid": {"CAIRN_GPU_SEGMENT_GRID": "full"},
            "no_register_bound": {"CAIRN_GPU_SEGMENT_SHORT_OCCUPANCY": "0"},
            "values_per_lane_32": {"CAIRN_GPU_SEGMENT_VALUES_PER_LANE": "32"},
            "batch_4": {"CAIRN_GPU_SEGMENT_SHORT_BATCH": "4"},
            "batch_4_values_per_lane_32": {
                "CAIRN_GPU_SEGMENT_SHORT_BATCH": "4",
                "CAIRN_GPU_SEGMENT_VALUES_PER_LANE": "32",
            },
        }
        out: dict[str, Any] = {"values": n, "dtype": "float32", "variants": {**variants, **short_variants}}
        copy = ceilings.get("device_copy_GBps")
        for nseg in (1_000, 10_000_000):
            nseg = min(nseg, n)
            offsets = cupy.linspace(0, n, nseg + 1).astype(cupy.int64)
            entry: dict[str, Any] = {}
            results = {}

            def run(o: Any = offsets) -> dict[str, Any]:
                return gpu.segment_reduce_gpu(values, o, out="cupy")

            chosen_variants = dict(variants)
            if n // nseg <= 2048:  # short segments: the group kernels run
                chosen_variants.update(short_variants)
            for path, env in chosen_variants.items():
                os.environ.update(env)
                try:
                    s = gpu_seconds(run, 3)
                    results[path] = run()
                finally:
                    for name in env:
                        os.environ.pop(name, None)
                moved = n * 4 + (nseg + 1) * 8 + 7 * 8 * nseg
                entry[f"{path}_ms"] = round(s * 1e3, 3)
                if copy:
                    entry[f"{path}_pct_of_device_copy"] = round(100 * moved / s / 1e9 / copy, 1)
            base = results["default"]
            entry["same_count_min_max"] = all(
                bool(cupy.array_equal(base[k], other[k]))
                for other in results.values()
                for k in ("count", "nan_count", "min", "max")
            )
            entry["max_rel_diff_sum_var"] = max(
                float(cupy.nanmax(cupy.abs(base[k] - other[k]) / cupy.maximum(cupy.abs(base[k]), 1e-300)))
                for other in results.values()
                for k in ("sum", "var")
            )
            out[f"{nseg}_segments"] = entry
            del results, base
        return out

    section("segment_reduce_paths", segment_reduce_paths)

    results["total_s"] = round(time.perf_counter() - start, 1)
    save()
    print(json.dumps(results, indent=1, default=str))
    failed = [k for k, v in results["sections"].items() if "error" in v]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
