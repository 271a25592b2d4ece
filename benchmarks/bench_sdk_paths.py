"""The SDK paths a person feels (issue 24): the end of a run, 1M-point reads, a sequential loop
under the gateway's rate limit. Old and new SDK side by side on one platform, interleaved.

Each measurement runs in a client subprocess, with the SDK either of this tree ("new") or of an
older commit (``--old REV``, default the commit before issue 24's SDK work; exported with
``git archive`` into a temp dir), taking turns, so machine load hits both alike. The platform
(the services of this tree) runs with the new defaults for users' tokens (1,000 requests/s, bursts
of 2,000) and the OLD defaults for service accounts (200/s, bursts of 400, via
CAIRN_RATE_LIMIT_SERVICE), so one gateway shows both limits.

- end of run: ``start_run`` (default options), 2,000 ``log_metric`` calls, then leave the ``with``
  block; the figure is the time from the last ``log_metric`` to the end of the block, for a fresh
  process's first run (what a training script sees) and for the runs after it ("warm").
- 1M-point history: one key with 1,000,000 points; ``metric_history`` in full (old: lists, new:
  NumPy), a fresh process's first call, and ``metric_table`` (Arrow) after it.
- sequential loop: ``Client.get_run`` N times in a plain loop; counts the 429 answers seen and the
  calls that raised (the old SDK does not retry 429: each is a call that would have aborted a script).

Usage: python benchmarks/bench_sdk_paths.py [--old REV] [--repeat 5] [--loop 3000]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from platform_harness import Platform, running  # noqa: E402

OLD_REV = "854f266"  # main before issue 24's SDK work

CLIENT = r'''
import json, sys, time
import cairn
from cairn.sdk.client import ApiError, Client

what, url, token = sys.argv[1], sys.argv[2], sys.argv[3]
arg = sys.argv[4] if len(sys.argv) > 4 else ""
out = {}
client = Client(url, token)
if what == "end_of_run":
    ends = []
    for _ in range(int(arg)):  # the first is a fresh process's first run (a script's usual one)
        with cairn.start_run("bench-sdk", client=client) as run:
            for step in range(2000):
                run.log_metric("loss", 1.0 / (step + 1), step=step)
            last = time.perf_counter()
        ends.append(time.perf_counter() - last)
    out["end_s"] = ends
elif what == "history":
    run_id, repeat = arg.split(":")
    full, table = [], []
    for _ in range(int(repeat)):
        t = time.perf_counter(); h = client.metric_history("bench-sdk", run_id, "long"); full.append(time.perf_counter() - t)
        t = time.perf_counter(); client.metric_table("bench-sdk", run_id, "long"); table.append(time.perf_counter() - t)
    out.update(full_s=full, table_s=table, points=len(h["steps"]), kind=type(h["values"]).__name__)
elif what == "loop":
    run_id, count = arg.split(":")
    seen = []
    client._http.event_hooks["response"].append(lambda r: seen.append(r.status_code))
    errors = 0
    t = time.perf_counter()
    for _ in range(int(count)):
        try:
            client.get_run("bench-sdk", run_id)
        except ApiError as err:
            errors += 1
            if err.status != 429:
                raise
    out.update(seconds=time.perf_counter() - t, calls=int(count), errors=errors, seen_429=seen.count(429))
print(json.dumps(out))
'''


def old_tree(rev: str, dest: Path) -> Path:
    """``src`` of ``rev`` under ``dest``, with this tree's built core linked in (the SDK parts we
    compare do not use it, but ``import cairn.core`` paths must resolve)."""
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev, "src/cairn"], check=True,
                             capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    import cairn

    for built in Path(cairn.__file__).parent.glob("_core*.so"):
        target = dest / "src" / "cairn" / built.name
        if not target.exists():
            target.symlink_to(built.resolve())
    return dest / "src"


def client(code: Path | None, what: str, url: str, token: str, arg: str) -> dict:
    env = dict(os.environ)
    if code is not None:  # the old SDK first on the path
        env["PYTHONPATH"] = f"{code}{os.pathsep}{env.get('PYTHONPATH', '')}"
    done = subprocess.run([sys.executable, "-c", CLIENT, what, url, token, arg], env=env, capture_output=True,
                          text=True, timeout=900)
    if done.returncode != 0:
        raise RuntimeError(f"{what} client failed: {done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def median_ms(values: list[float]) -> float:
    return round(1000 * statistics.median(values), 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--old", default=OLD_REV)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--loop", type=int, default=3000)
    parser.add_argument("--long", type=int, default=1_000_000)
    args = parser.parse_args()
    env = {"CAIRN_RATE_LIMIT": "1000", "CAIRN_RATE_BURST": "2000",  # the new defaults, explicitly
           "CAIRN_RATE_LIMIT_SERVICE": "200", "CAIRN_RATE_BURST_SERVICE": "400"}  # the old ones
    result: dict = {"machine": f"{os.cpu_count()} CPUs", "load_before": os.getloadavg()[0]}
    with tempfile.TemporaryDirectory() as tmp, running(Platform(Path(tmp) / "p", env=env)) as plat:
        old = old_tree(args.old, Path(tmp))
        codes = {"old": old, "new": None}
        import cairn

        with cairn.Client(plat.gateway, plat.token) as c:
            with cairn.start_run("bench-sdk", client=c, system_metrics=False, record_environment=False) as run:
                run_id = run.id  # the run the loops read (and the project, with the admin in it)
            for who in ("bench", "bench-ci"):
                c.add_member("bench-sdk", who, "editor")
            user = c.create_token("bench")["token"]
            service = c.create_token("bench-ci", kind="service")["token"]
            with cairn.start_run("bench-sdk", client=c, system_metrics=False, record_environment=False) as run:
                for step in range(args.long):  # 1M points into one key (new SDK), once
                    run.log_metric("long", float(step % 977), step=step)
                run.flush(600)
                long_run = run.id
        client(None, "end_of_run", plat.gateway, plat.token, "1")  # warms the metrics path
        for name in ("end", "end_warm", "hist"):
            for side in ("old", "new"):
                result[f"{name}_{side}"] = []
        for _ in range(args.repeat):
            for side, code in codes.items():
                ends = client(code, "end_of_run", plat.gateway, plat.token, "3")["end_s"]
                result[f"end_{side}"].append(ends[0])
                result[f"end_warm_{side}"] += ends[1:]
                h = client(code, "history", plat.gateway, plat.token, f"{long_run}:1")
                result[f"hist_{side}"] += h["full_s"]
                result.setdefault("table", []).extend(h["table_s"])
                result[f"hist_kind_{side}"] = h["kind"]
        for side, code in codes.items():
            for who, token in (("user_new_limits", user), ("service_old_limits", service)):
                result[f"loop_{side}_{who}"] = client(code, "loop", plat.gateway, token, f"{run_id}:{args.loop}")
    result["load_after"] = os.getloadavg()[0]
    summary = {
        "end_of_run_ms": {side: median_ms(result[f"end_{side}"]) for side in ("old", "new")},
        "end_of_run_warm_ms": {side: median_ms(result[f"end_warm_{side}"]) for side in ("old", "new")},
        "history_1m_ms": {side: median_ms(result[f"hist_{side}"]) for side in ("old", "new")},
        "history_kind": {side: result[f"hist_kind_{side}"] for side in ("old", "new")},
        "metric_table_1m_ms": median_ms(result["table"]),
        "loops": {k: v for k, v in result.items() if k.startswith("loop_")},
        "load": [result["load_before"], result["load_after"]],
        "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
