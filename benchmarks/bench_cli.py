"""The CLI as a person feels it: start-up, `cairn fingerprint DIR` vs b3sum, and a fully cached
re-run vs `dvc status`, each a command-line subprocess, side by side in one run, as ratios.

1. Start-up: `python -c pass` (the interpreter alone), `cairn --help`, `cairn fingerprint --help`,
   with hyperfine when it is on PATH (else a loop of subprocess runs); with --before PYTHONPATH
   also the same commands from another source tree (e.g. the commit before the lazy CLI).
2. A tree of --files files of log-normal sizes totalling --total-gb (the generator of
   bench_fingerprint_tree.py, old mtimes), page cache warm: `cairn fingerprint data` (no cache)
   against Debian's `b3sum` over the same files (one process, files one after another, its own
   threads per file) and `python -c` calling `fingerprint_tree` (no CLI), interleaved (one run of
   each in turn, --repeat rounds: a change of load hits all alike), plus `fingerprint_tree` in
   this warm process, for where the time goes.
3. With --dvc BINARY (or --dvc-venv DIR): in a `git init` + `dvc init` repository holding that tree
   under data/, `dvc add data` once, then `dvc status` on the unchanged tree against `cairn
   fingerprint data --cache X` with every file already in the cache, interleaved likewise.

Usage:
    python benchmarks/bench_cli.py [--files 3000] [--total-gb 2] [--dvc-venv /work/dvcvenv]
        [--before /tmp/cairn-before] [--repeat 5]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

from bench_fingerprint_tree import all_files, generate

from cairn import core


def wall(argv: list[str], cwd: str | None = None, env: dict[str, str] | None = None) -> float:
    """Seconds of one subprocess run; a failure stops the benchmark with its output."""
    t0 = time.perf_counter()
    done = subprocess.run(argv, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    elapsed = time.perf_counter() - t0
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv[:4])} ... failed ({done.returncode}): {done.stderr.decode()[-2000:]}")
    return elapsed


def best(argv: list[str], repeat: int, **kw: object) -> tuple[float, float]:
    """(best, median) seconds of ``repeat`` runs after one warm-up run."""
    wall(argv, **kw)  # type: ignore[arg-type]
    times = [wall(argv, **kw) for _ in range(repeat)]  # type: ignore[arg-type]
    return min(times), statistics.median(times)


def interleaved(commands: dict[str, list[str]], repeat: int, env: dict[str, str],
                cwd: str | None = None) -> dict[str, list[float]]:
    """Seconds of each command, ``repeat`` rounds of one run each in turn (after a warm-up round),
    so that a change of load on a shared machine hits every command alike."""
    for argv in commands.values():
        wall(argv, cwd=cwd, env=env)
    times: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(repeat):
        for name, argv in commands.items():
            times[name].append(wall(argv, cwd=cwd, env=env))
    return times


def startup(commands: dict[str, str], env: dict[str, str], runs: int) -> dict[str, tuple[float, float]]:
    """name -> (mean, median) seconds of a shell command line, by hyperfine when available."""
    out: dict[str, tuple[float, float]] = {}
    if shutil.which("hyperfine"):
        with tempfile.NamedTemporaryFile(suffix=".json") as report:
            argv = ["hyperfine", "-N", "--warmup", "3", "--runs", str(runs), "--export-json", report.name,
                    *commands.values()]
            subprocess.run(argv, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            results = json.load(open(report.name))["results"]
        for name, result in zip(commands, results, strict=True):
            out[name] = (result["mean"], result["median"])
        return out
    for name, line in commands.items():
        times = [wall(line.split(), env=env) for _ in range(runs)]
        out[name] = (statistics.mean(times), statistics.median(times))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", help="where data/ (and the dvc repository) go; default: a temp dir, removed")
    parser.add_argument("--files", type=int, default=3000)
    parser.add_argument("--total-gb", type=float, default=2.0)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--runs", type=int, default=20, help="start-up runs per command")
    parser.add_argument("--before", help="PYTHONPATH of another cairn source tree to time start-up against")
    parser.add_argument("--dvc", help="dvc executable")
    parser.add_argument("--dvc-venv", help="virtual environment holding dvc (its bin/dvc is used)")
    args = parser.parse_args()
    dvc = args.dvc or (os.path.join(args.dvc_venv, "bin", "dvc") if args.dvc_venv else None)
    py = sys.executable
    cli = [py, "-m", "cairn.cli.main"]
    # Bytecode cached as an installed package has it (a dev shell may set PYTHONDONTWRITEBYTECODE,
    # which recompiles every module on every start): in a temp prefix, so no tree gets __pycache__.
    pycache = tempfile.mkdtemp(prefix="cairn-bench-pycache-")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env.update(DVC_NO_ANALYTICS="1", GIT_TERMINAL_PROMPT="0", PYTHONPYCACHEPREFIX=pycache)
    load = os.getloadavg()[0]
    print(f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {os.cpu_count()} CPUs, load {load:.1f}")

    lines = {"python -c pass": f"{py} -c pass", "cairn --help": f"{py} -m cairn.cli.main --help",
             "cairn fingerprint --help": f"{py} -m cairn.cli.main fingerprint --help"}
    now = startup(lines, env, args.runs)
    before = startup(lines, {**env, "PYTHONPATH": args.before}, args.runs) if args.before else {}
    print(f"\n{'start-up (s)':28} {'mean':>7} {'median':>7}" + (f" {'before mean':>12} {'ratio':>6}" if before else ""))
    for name, (mean, median) in now.items():
        extra = f" {before[name][0]:12.3f} {before[name][0] / mean:5.1f}x" if before else ""
        print(f"{name:28} {mean:7.3f} {median:7.3f}{extra}")

    work = args.workdir or tempfile.mkdtemp(prefix="cairn-bench-cli-")
    data = os.path.join(work, "data")
    try:
        if not os.path.isdir(data):
            generate(data, args.files, int(args.total_gb * 1e9), 0)
            subprocess.run(["sync"], check=True)
        paths = all_files(data)
        total = sum(os.path.getsize(p) for p in paths)
        print(f"\ntree: {len(paths)} files, {total / 1e9:.2f} GB under {data}")
        b3sum = shutil.which("b3sum")
        commands = {"cairn fingerprint DIR (CLI)": [*cli, "fingerprint", data],
                    "python -c fingerprint_tree (no CLI)": [py, "-c", "from cairn.core import fingerprint_tree; "
                                                            f"fingerprint_tree({data!r})"]}
        if b3sum:
            commands[f"b3sum ({_version([b3sum, '--version'])})"] = [b3sum, *paths]
        times = interleaved(commands, args.repeat, env)
        in_proc = min(_timed(lambda: core.fingerprint_tree(data)) for _ in range(args.repeat))
        rows = [(name, min(t), statistics.median(t)) for name, t in times.items()]
        rows.append(("fingerprint_tree (warm process)", in_proc, in_proc))
        ours, ours_med = rows[0][1:]
        if b3sum:
            theirs, theirs_med = rows[2][1:]
        print(f"{'warm, no cache':36} {'best s':>7} {'median':>7} {'GB/s':>6}")
        for name, t, med in rows:
            print(f"{name:36} {t:7.3f} {med:7.3f} {total / t / 1e9:6.2f}")
        if b3sum:
            print(f"cairn CLI vs b3sum: {theirs / ours:.2f}x (>= 1.0x wanted; median {theirs_med / ours_med:.2f}x)")
        else:
            print("b3sum: not on PATH, skipped (apt-get install b3sum)")

        cache = os.path.join(work, "fingerprints.sqlite")
        wall([*cli, "fingerprint", data, "--cache", cache], env=env)  # fills the cache
        hits = [*cli, "fingerprint", data, "--cache", cache]
        if not dvc:
            cached, cached_med = best(hits, args.repeat, env=env)
            print(f"\ncairn fingerprint DIR --cache X, every file a hit: best {cached:.3f} s, median {cached_med:.3f} s")
            return
        if not os.path.isdir(os.path.join(work, ".dvc")):
            for argv in (["git", "init", "-q"], [dvc, "init", "-q"], [dvc, "config", "core.analytics", "false"]):
                wall(argv, cwd=work, env=env)
            print(f"\ndvc add data (once): {wall([dvc, 'add', '-q', 'data'], cwd=work, env=env):.3f} s")
        both = interleaved({"cairn": hits, "dvc": [dvc, "status", "-q"]}, args.repeat, env, cwd=work)
        cached, cached_med = min(both["cairn"]), statistics.median(both["cairn"])
        status, status_med = min(both["dvc"]), statistics.median(both["dvc"])
        print(f"cairn fingerprint DIR --cache X, every file a hit: best {cached:.3f} s, median {cached_med:.3f} s")
        print(f"dvc status ({_version([dvc, '--version'])}), unchanged: best {status:.3f} s, median {status_med:.3f} s")
        print(f"dvc status / cairn cached: {status / cached:.2f}x (>= 5x wanted; median {status_med / cached_med:.2f}x)")
    finally:
        shutil.rmtree(pycache, ignore_errors=True)
        if not args.workdir:
            shutil.rmtree(work, ignore_errors=True)
    print(f"load at end {os.getloadavg()[0]:.1f}")


def _timed(fn: object) -> float:
    t0 = time.perf_counter()
    fn()  # type: ignore[operator]
    return time.perf_counter() - t0


def _version(argv: list[str]) -> str:
    return subprocess.run(argv, capture_output=True, text=True).stdout.strip()


if __name__ == "__main__":
    main()
