"""cairn.core.blake3 against the reference `blake3` package (Rust) on the same buffer.

Prints throughput in GB/s (10^9 bytes per second, best of --repeat runs) for one thread and for
all threads, the ratio cairn / reference (target >= 0.8x), and each forced SIMD level of cairn on
one thread. Usage: python benchmarks/bench_blake3.py [--size-mb 512] [--repeat 5]
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from collections.abc import Callable

import blake3 as reference
import numpy as np

from cairn import _core, core


def best_seconds(fn: Callable[[], object], repeat: int) -> float:
    return best_seconds_interleaved([fn], repeat)[0]


def best_seconds_interleaved(fns: list[Callable[[], object]], repeat: int) -> list[float]:
    """Best time of each function, the runs alternating so that load on a shared machine
    falls on all of them alike."""
    for fn in fns:
        fn()  # warm: page faults, thread start-up, CPU frequency
    best = [float("inf")] * len(fns)
    for _ in range(repeat):
        for i, fn in enumerate(fns):
            t0 = time.perf_counter()
            fn()
            best[i] = min(best[i], time.perf_counter() - t0)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=512, help="buffer size in MiB (default 512)")
    parser.add_argument("--repeat", type=int, default=5, help="timed runs per case (best is kept)")
    args = parser.parse_args()

    size = args.size_mb << 20
    buf = np.random.default_rng(0).integers(0, 256, size, dtype=np.uint8)
    view = memoryview(buf)
    assert core.blake3(view) == reference.blake3(view).digest()
    cores = os.cpu_count() or 1

    def gbps(seconds: float) -> float:
        return size / seconds / 1e9

    print(
        f"BLAKE3, {args.size_mb} MiB buffer, best of {args.repeat}; "
        f"{platform.processor() or platform.machine()}, {cores} CPUs, "
        f"cairn SIMD level {core.build_info()['simd']}, blake3 package {reference.__version__}"
    )
    print(f"{'threads':>8} {'cairn GB/s':>11} {'blake3 GB/s':>12} {'ratio':>7}")
    for threads in sorted({1, cores}):
        ours, theirs = best_seconds_interleaved(
            [
                lambda threads=threads: core.blake3(view, threads=threads),
                lambda threads=threads: reference.blake3(view, max_threads=threads).digest(),
            ],
            args.repeat,
        )
        print(f"{threads:>8} {gbps(ours):>11.2f} {gbps(theirs):>12.2f} {theirs / ours:>6.2f}x")

    print("cairn, forced SIMD level, 1 thread:")
    for level in _core._blake3_levels():
        seconds = best_seconds(
            lambda level=level: _core._blake3_with_level(view, level, 1), max(1, args.repeat // 2)
        )
        print(f"{level:>10} {gbps(seconds):>7.2f} GB/s")


if __name__ == "__main__":
    main()
