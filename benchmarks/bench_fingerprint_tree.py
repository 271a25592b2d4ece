"""Fingerprinting a directory tree: cairn vs hashlib MD5 (DVC's algorithm) vs b3sum, warm and cold.

Generates (once, then reuses) a tree of --files files of varied sizes totalling --total-gb, plus
one --big-gb file, with old mtimes so that a cache applies. Then times, in one run:

- cairn.core.fingerprint_tree without a cache, and again with a cache that already holds every
  file (the "nothing changed" case);
- hashlib MD5 over the same files (1 MiB reads, one thread: how DVC hashes);
- b3sum over the same files, if it is on PATH (the Rust reference, same algorithm);
- with --dvc BINARY (or --dvc-venv DIR holding bin/dvc): command line against command line, in a
  temporary git + dvc repository holding a copy of the same tree under data/ (page cache warm):
  `dvc add data/`, then `dvc status` on the unchanged tree, against `cairn fingerprint data/
  --cache X` twice (the first run fills the cache, the second is all cache hits).

"Cold" runs first drop each file from the page cache with posix_fadvise(DONTNEED) (the VM's
host may still cache the disk). Usage:
    python benchmarks/bench_fingerprint_tree.py [--root DIR] [--files 5000] [--total-gb 2]
        [--dvc-venv /work/venv-dvc | --dvc PATH/TO/dvc] [--cairn PATH/TO/cairn]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
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


def run_cmd(argv: list[str], cwd: str, env: dict[str, str] | None = None) -> float:
    """Wall seconds of one subprocess run (output discarded; fails loudly on a non-zero exit)."""
    t0 = time.perf_counter()
    done = subprocess.run(argv, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    elapsed = time.perf_counter() - t0
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({done.returncode}):\n{done.stdout.decode()[-2000:]}")
    return elapsed


def find_cairn(given: str | None) -> str:
    """The cairn entry point: --cairn, else next to this interpreter, else on PATH."""
    beside = os.path.join(os.path.dirname(sys.executable), "cairn")
    found = given or (beside if os.path.exists(beside) else shutil.which("cairn"))
    if not found:
        raise SystemExit("cairn command not found: pip install -e . or pass --cairn")
    return found


def bench_dvc(args: argparse.Namespace, dvc: str) -> None:
    """dvc add / dvc status vs cairn fingerprint [--cache], each a command-line subprocess."""
    cairn = find_cairn(args.cairn)
    repo = tempfile.mkdtemp(prefix="cairn-dvc-bench-", dir=args.dvc_workdir)
    env = {**os.environ, "DVC_NO_ANALYTICS": "1", "GIT_TERMINAL_PROMPT": "0"}
    data = os.path.join(repo, "data")
    try:
        print(f"dvc: {subprocess.run([dvc, '--version'], capture_output=True, text=True).stdout.strip()}"
              f" ({dvc}); cairn: {cairn}; repo {repo}", flush=True)
        # The same tree (same seed and sizes), written again: dvc add must not touch args.root.
        generate(data, args.files, int(args.total_gb * 1e9), int(args.big_gb * 1e9))
        os.sync()  # no write-back of the fresh copy competing with the timed runs
        paths = all_files(data)
        total = sum(os.path.getsize(p) for p in paths)
        run_cmd(["git", "init", "-q"], repo, env)
        run_cmd([dvc, "init", "-q"], repo, env)
        run_cmd([dvc, "config", "core.analytics", "false"], repo, env)
        cache = os.path.join(repo, "cairn-cache.sqlite")
        fp = [cairn, "fingerprint", "data"]
        # Warm the page cache (and the interpreter's files) with one cairn run without a cache.
        run_cmd(fp, repo, env)
        no_cache = min(run_cmd(fp, repo, env) for _ in range(3))
        dvc_add = run_cmd([dvc, "add", "-q", "data"], repo, env)
        status_first = run_cmd([dvc, "status", "-q"], repo, env)
        status = min(status_first, *(run_cmd([dvc, "status", "-q"], repo, env) for _ in range(2)))
        fills = []
        for _ in range(2):  # the filling run, twice, each time from an empty cache
            if os.path.exists(cache):
                os.remove(cache)
            fills.append(run_cmd([*fp, "--cache", cache], repo, env))
        fill = min(fills)
        hits = [run_cmd([*fp, "--cache", cache], repo, env) for _ in range(3)]
        out = subprocess.run([*fp, "--cache", cache, "--json"], cwd=repo, env=env, capture_output=True,
                             text=True, check=True)
        hashed = json.loads(out.stdout)["hashed_bytes"]
        startup = min(run_cmd([cairn, "fingerprint", "--help"], repo, env) for _ in range(3))
    finally:
        if not args.keep_dvc_repo:
            subprocess.run(["chmod", "-R", "u+w", repo], check=False)
            shutil.rmtree(repo, ignore_errors=True)

    print(f"\ncommand line vs command line, {len(paths)} files, {total / 1e9:.2f} GB, page cache warm:")
    print(f"  dvc add data                               {dvc_add:8.3f} s")
    print(f"  cairn fingerprint data (no cache)          {no_cache:8.3f} s   "
          f"dvc add / cairn = {dvc_add / no_cache:.1f}x (target >= 15x)")
    print(f"  cairn fingerprint data --cache (filling)   {fill:8.3f} s   "
          f"dvc add / cairn = {dvc_add / fill:.1f}x")
    print(f"  dvc status (unchanged; first {status_first:.3f} s)     {status:8.3f} s")
    print(f"  cairn fingerprint data --cache (all hits)  {min(hits):8.3f} s   "
          f"dvc status / cairn = {status / min(hits):.2f}x (target > 1x); runs "
          + ", ".join(f"{h:.3f}" for h in hits) + f"; bytes read on a hit run: {hashed}")
    print(f"  cairn fingerprint --help (CLI startup)     {startup:8.3f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default=os.path.join(tempfile.gettempdir(), "cairn-bench-tree"))
    parser.add_argument("--files", type=int, default=5000)
    parser.add_argument("--total-gb", type=float, default=2.0)
    parser.add_argument("--big-gb", type=float, default=1.0)
    parser.add_argument("--dvc", help="dvc executable: also time dvc add / dvc status vs cairn fingerprint")
    parser.add_argument("--dvc-venv", help="virtual environment holding dvc (its bin/dvc is used)")
    parser.add_argument("--dvc-workdir", help="where the temporary git+dvc repository goes (default: temp)")
    parser.add_argument("--keep-dvc-repo", action="store_true", help="leave the git+dvc repository behind")
    parser.add_argument("--cairn", help="cairn executable (default: next to this Python, else on PATH)")
    parser.add_argument("--only-dvc", action="store_true", help="skip the in-process measurements")
    args = parser.parse_args()
    dvc = args.dvc or (os.path.join(args.dvc_venv, "bin", "dvc") if args.dvc_venv else None)
    if dvc and not os.access(dvc, os.X_OK):
        raise SystemExit(f"dvc not executable: {dvc}")
    if args.only_dvc:
        if not dvc:
            raise SystemExit("--only-dvc needs --dvc or --dvc-venv")
        bench_dvc(args, dvc)
        return

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
    if dvc:
        bench_dvc(args, dvc)


if __name__ == "__main__":
    main()
