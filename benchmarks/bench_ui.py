"""Web UI speed in Debian's Chromium against a real ``cairn up`` (issue 22's targets).

    python benchmarks/bench_ui.py [--runs 10000] [--points 1000000] [--repeat 5] [--json]

Starts ``cairn up`` (own data dir, free ports, rate limit raised for the bulk load), then:

- creates ``--runs`` runs in one project (``POST .../runs`` through the gateway from 16 threads,
  as bench_foundation's load does; run ``i`` has ``params.lr = i / runs``) and logs one metric of
  ``--points`` points on another run with the SDK's metrics logger (``run.log_metric``, flushed);
- signs in in Chromium (tests/browser_driver.py) and measures inside the page, with
  ``performance.now()`` and a MutationObserver installed before the app loads:
  * first page shown: navigation start to the runs table's first row in the DOM (10,000-run
    project; the table's first page is 1,000 runs);
  * filter: the Enter keydown in the filter box to the rows updated, for a narrow filter
    (``params.lr > 0.95``, one page) and a broad one (``params.lr > 0.5``: the first page shown,
    and all matching runs loaded);
  * chart: navigation start to the 1M-point run's chart drawn (its "N of 1,000,000 points" caption
    and canvas in the DOM, then one animation frame);
- the built app's size, each file gzip-compressed (level 9).

Each browser figure is the median of ``--repeat`` tries (min and max printed too). Targets (issue
22): first page < 1 s, filter < 200 ms, 1M-point chart < 500 ms. Measured, never asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from browser_driver import bundle_gzip_bytes, open_context, sign_in  # noqa: E402
from playwright.sync_api import Page, sync_playwright  # noqa: E402
from up_driver import start_up  # noqa: E402

import cairn  # noqa: E402

# Installed before the app's own script on every navigation: marks (ms since navigation start)
# when the runs table's first row, a chart's caption and canvas, and a wanted row count appear.
MARKS = r"""
window.__marks = {};
window.__want = null;
addEventListener("keydown", (e) => {
  if (e.key === "Enter" && e.target && e.target.id === "run-filter") window.__marks.key = performance.now();
}, true);
new MutationObserver(() => {
  const m = window.__marks;
  if (m.rows === undefined && document.querySelector("[id^=run-row-]")) m.rows = performance.now();
  if (m.chart === undefined) {
    const f = document.querySelector("figure.chart");
    if (f && /of [\d,]+ points/.test(f.textContent) && f.querySelector("canvas")) {
      m.chart = performance.now();
      requestAnimationFrame(() => { m.chartFrame = performance.now(); });
    }
  }
  const c = document.querySelector("p.count");
  if (c && window.__want) {
    const text = c.textContent;
    if (m.key !== undefined && m.first === undefined && !text.startsWith(window.__from)) m.first = performance.now();
    if (m.key !== undefined && m.all === undefined && text.startsWith(window.__want)) m.all = performance.now();
  }
}).observe(document, { subtree: true, childList: true, characterData: true });
"""


def make_runs(url: str, token: str, project: str, n: int) -> float:
    """``n`` runs through the gateway from 16 threads; returns runs/s."""
    seed = cairn.Client(url, token=token)
    seed.start_new_run(project, experiment="bench", name="seed", params={"lr": "0"})
    seed.close()
    clients = [cairn.Client(url, token=token) for _ in range(16)]

    def one(i: int) -> None:
        clients[i % 16].create_run(project, experiment="bench", name=f"run-{i}", params={"lr": str(i / n)})

    t0 = time.perf_counter()
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(one, range(1, n)))
    rate = (n - 1) / (time.perf_counter() - t0)
    for c in clients:
        c.close()
    return rate


def log_points(url: str, token: str, project: str, n: int) -> tuple[str, float]:
    """One run with one metric of ``n`` points (the SDK's logger, flushed); its id and points/s."""
    client = cairn.Client(url, token=token)
    t0 = time.perf_counter()
    with cairn.start_run(project=project, experiment="bench", name="million", client=client,
                         system_metrics=False, record_environment=False) as run:
        for step in range(n):
            run.log_metric("loss", 1.0 / (step + 1) + (step % 997 == 0) * 0.5, step=step)
        run.flush()
    rate = n / (time.perf_counter() - t0)
    total = 0
    deadline = time.monotonic() + 60
    while total < n and time.monotonic() < deadline:  # readable back before the browser asks
        total = client.request("GET", f"/api/v1/metrics/projects/{project}/runs/{run.id}/metrics",
                               params={"key": "loss", "points": 10})["total"]
        time.sleep(0.2)
    client.close()
    return run.id, rate


def mark(page: Page, name: str, timeout: float = 60) -> float:
    page.wait_for_function(f"window.__marks && window.__marks.{name} !== undefined", timeout=timeout * 1000)
    return float(page.evaluate(f"window.__marks.{name}"))


def filter_once(page: Page, text: str, want: str) -> tuple[float, float]:
    """Enter a filter; ms from the Enter keydown to the rows changing and to ``want`` runs loaded."""
    page.evaluate("([w, f]) => { window.__want = w; window.__from = f; "
                  "for (const k of ['key', 'first', 'all']) delete window.__marks[k]; }",
                  [want, page.locator("p.count").inner_text().split(" ·")[0]])
    box = page.locator("#run-filter")
    box.fill(text)
    box.press("Escape")
    box.press("Enter")
    key = mark(page, "key")
    return mark(page, "first") - key, mark(page, "all") - key


def stats(xs: list[float]) -> dict[str, float]:
    return {"median_ms": round(statistics.median(xs), 1), "min_ms": round(min(xs), 1), "max_ms": round(max(xs), 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=10_000)
    ap.add_argument("--points", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    os.environ.setdefault("CAIRN_RATE_LIMIT", "100000")  # the bulk load, not the limiter, is measured
    os.environ.setdefault("CAIRN_RATE_BURST", "100000")
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        up = start_up(Path(tmp) / "data")
        try:
            up.wait_healthy()
            token = (up.data_dir / "admin.token").read_text().strip()
            out["create_runs_per_s"] = round(make_runs(up.url, token, "big", args.runs))
            run_id, rate = log_points(up.url, token, "charts", args.points)
            out["log_points_per_s"] = round(rate)
            with sync_playwright() as pw:
                ctx = open_context(pw, Path(tmp) / "profile")
                ctx.add_init_script(MARKS)
                page = ctx.new_page()
                sign_in(page, up.url, token)
                first, narrow_first, broad_first, broad_all, chart = [], [], [], [], []
                narrow = sum(1 for i in range(args.runs) if i / args.runs > 0.95)
                broad = sum(1 for i in range(args.runs) if i / args.runs > 0.5)
                for _ in range(args.repeat):
                    page.goto(f"{up.url}/projects/big/runs")
                    first.append(mark(page, "rows"))
                    page.locator("p.count", has_text=f"{args.runs:,} runs").wait_for(timeout=120_000)
                    a, _ = filter_once(page, "params.lr > 0.95", f"{narrow:,} runs")
                    narrow_first.append(a)
                    b, c = filter_once(page, "params.lr > 0.5", f"{broad:,} runs")
                    broad_first.append(b)
                    broad_all.append(c)
                for _ in range(args.repeat):
                    page.goto(f"{up.url}/projects/charts/runs/{run_id}")
                    mark(page, "chart")
                    chart.append(mark(page, "chartFrame"))
                ctx.close()
        finally:
            up.stop()
    bundle = bundle_gzip_bytes()
    out.update({
        "runs": args.runs, "points": args.points, "repeat": args.repeat,
        "first_page_shown": stats(first),
        f"filter_{narrow}_of_{args.runs}_rows_updated": stats(narrow_first),
        f"filter_{broad}_of_{args.runs}_first_rows_updated": stats(broad_first),
        f"filter_{broad}_of_{args.runs}_all_loaded": stats(broad_all),
        f"chart_{args.points}_points_drawn": stats(chart),
        "bundle_gzip_bytes": sum(bundle.values()), "bundle_files_gzip": bundle,
    })
    if args.json:
        print(json.dumps(out, indent=2))
        return
    for k, v in out.items():
        print(f"{k:45} {v}")


if __name__ == "__main__":
    main()
