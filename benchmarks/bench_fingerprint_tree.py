"""Fingerprinting a directory tree: cairn vs hashlib MD5 (DVC's algorithm) vs b3sum, warm and cold.

Generates (once, then reuses) a tree of --files files of varied sizes totalling --total-gb, plus
one --big-gb file, with old mtimes so that a cache applies. Then times, in one run:

- cairn.core.fingerprint_tree without a cache, and again with a cache that already holds every
  file (the "nothing changed" case);
- hashlib MD5 over the same files (1 MiB reads, one thread: how DVC hashes);
- b3sum over the same files, if it is on PATH (the Rust reference, same algorithm).

"Cold" runs first drop each file from the page cache with posix_fadvise(DONTNEED) (the VM's
host may still cache the disk). Usage:
    python benchmarks/bench_fingerprint_tree.py [--root DIR] [--files 5000] [--total-gb 2]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable

import numpy as np

from cairn import core

OLD_NS = 1_600_000_000 * 10**9


def generate(root: str, files: int, total: int, big: int) -> None:
    rng = np.random.default_rng(42)
    weights = rng.lognormal(mean=0.0, sigma=1.5, size=files)
    sizes = (weights / weights.sum() * total).astype(np.int64)
    block = rng.integers(0, 256, 64 << 20, dtype=np.uint8).tobytes()
    for i, size in enumerate(sizes):
        path = os.path.join(root, f"part-{i % 50:02d}", f"file-{i:05d}.bin")
        write(path, int(size), block, i)
    write(os.path.join(root, "big.bin"), big, block, files)


def write(path: str, size: int, block: bytes, salt: int) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(salt.to_bytes(8, "little"))  # no two files alike
        left = size - 8
        while left > 0:
            n = min(left, len(block))
            f.write(block[:n])
            left -= n
    os.utime(path, ns=(OLD_NS, OLD_NS))


def all_files(root: str) -> list[str]:
    return sorted(os.path.join(d, n) for d, _, names in os.walk(root) for n in names)


def evict(paths: list[str]) -> None:
    for p in paths:
        fd = os.open(p, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def md5_all(paths: list[str]) -> None:
    for p in paths:
        h = hashlib.md5()
        with open(p, "rb") as f:
            while chunk := f.read(1 << 20):
                h.update(chunk)


def timed(fn: Callable[[], object], before: Callable[[], None] | None = None) -> float:
    if before is not None:
        before()
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default=os.path.join(tempfile.gettempdir(), "cairn-bench-tree"))
    parser.add_argument("--files", type=int, default=5000)
    parser.add_argument("--total-gb", type=float, default=2.0)
    parser.add_argument("--big-gb", type=float, default=1.0)
    args = parser.parse_args()

    if not os.path.isdir(args.root):
        print(f"generating {args.root} ...", flush=True)
        generate(args.root, args.files, int(args.total_gb * 1e9), int(args.big_gb * 1e9))
    paths = all_files(args.root)
    total = sum(os.path.getsize(p) for p in paths)
    b3sum = shutil.which("b3sum")
    cache = os.path.join(tempfile.mkdtemp(), "cache.sqlite")
    print(f"{len(paths)} files, {total / 1e9:.2f} GB, {os.cpu_count()} CPUs")

    def cairn_tree() -> None:
        core.fingerprint_tree(args.root)

    def run_b3sum() -> None:
        subprocess.run([b3sum or "b3sum", *paths], check=True, stdout=subprocess.DEVNULL)

    rows: list[tuple[str, float, float | None]] = []
    for name, fn in [
        ("cairn fingerprint_tree", cairn_tree),
        ("hashlib md5", lambda: md5_all(paths)),
    ]:
        warm = min(timed(fn) for _ in range(3))
        cold = timed(fn, before=lambda: evict(paths))
        rows.append((name, warm, cold))
    if b3sum:
        warm = min(timed(run_b3sum) for _ in range(2))
        rows.append(("b3sum", warm, timed(run_b3sum, before=lambda: evict(paths))))
    core.fingerprint_tree(args.root, cache=cache)
    cached = min(timed(lambda: core.fingerprint_tree(args.root, cache=cache)) for _ in range(3))

    ours = rows[0][1]
    print(f"{'':24} {'warm s':>8} {'GB/s':>6} {'cold s':>8} {'cairn faster (warm)':>20}")
    for name, warm, cold in rows:
        print(f"{name:24} {warm:8.3f} {total / warm / 1e9:6.2f} {cold:8.3f} {warm / ours:19.2f}x")
    if not b3sum:
        print("b3sum: not on PATH, skipped")
    print(f"cairn, unchanged tree, all cache hits (in process): {cached * 1e3:.1f} ms")


if __name__ == "__main__":
    main()
