"""Lineage projection: build rate and traversal latency on a synthetic log of ~1M events.

The events are made here as ``Event`` objects (seeded randomness) and fed to the projection's
apply path (``LineageStore.apply`` with the service's handler) in batches, the way the service's
ProjectionRunner does after reading them from NATS; NATS itself is not in this measurement.

Shape (defaults): 100 datasets x 10 versions = 1,000 dataset versions, 30% of them derived (their
manifest is an artifact a recent run logged); 10,000 runs, each using 1-5 dataset versions chosen
with a bias towards recent and popular ones, logging ~45 artifacts (checkpoints) and ~40
params/tags/status events; 50 models, 1,000 model versions registered from random runs, and 3,000
alias moves. Then, on random nodes: upstream of model versions and impact (downstream) of dataset
versions, both cut at depth 10, p50/p95 over ``--queries`` each; the same queries as a plain
Python BFS over adjacency dicts built from the event list, for comparison.

Usage: python benchmarks/bench_lineage.py [--runs 10000] [--batch 512] [--queries 200] [--seed 7]
"""

from __future__ import annotations

import argparse
import gc
import os
import platform as pyplatform
import random
import statistics
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import duckdb
import psutil

from cairn.kernel.envelope import Event
from cairn.services.lineage.domain import node_id
from cairn.services.lineage.projection import projection
from cairn.services.lineage.queries import IMPACT_KINDS, LineageQueries
from cairn.services.lineage.store import LineageStore

PROJECT = "bench"


def digest(rng: random.Random) -> str:
    return "%064x" % rng.getrandbits(256)


def generate(runs: int, seed: int) -> list[Event]:
    """A realistic-looking log: runs interleaved with dataset versions, models and alias moves."""
    rng = random.Random(seed)
    out: list[Event] = []
    seq = 0

    def emit(event_type: str, aggregate: str, aggregate_id: str, data: dict) -> None:
        nonlocal seq
        seq += 1
        out.append(Event(event_type, PROJECT, aggregate, aggregate_id, data, sequence=seq,
                         time=f"2026-01-01T00:00:00.{seq:06d}Z" if seq < 1_000_000 else
                         f"2026-01-01T00:00:01.{seq - 999_999:06d}Z", id=f"e{seq}"))

    versions: list[tuple[str, int]] = []   # dataset versions so far
    latest: dict[str, int] = {}
    recent_artifacts: list[str] = []
    run_ids: list[str] = []
    models: list[str] = []
    model_versions: dict[str, int] = {}
    datasets_total, versions_total, model_versions_total = 100, 1000, 1000
    per_run_versions = versions_total / runs

    def new_dataset_version(derived: bool) -> None:
        name = f"ds{rng.randrange(datasets_total):03d}"
        v = latest.get(name, 0) + 1
        latest[name] = v
        manifest = rng.choice(recent_artifacts[-500:]) if derived and recent_artifacts else digest(rng)
        emit("dataset.version_created", "dataset", name, {"version": v, "manifest_digest": manifest, "files": 10,
                                                          "total_size": 1000, "description": ""})
        versions.append((name, v))

    for _ in range(20):
        new_dataset_version(False)
    for m in range(50):
        model_id = f"m{m:02d}"
        emit("model.created", "project", PROJECT, {"model_id": model_id, "name": f"model-{m}", "description": ""})
        models.append(model_id)
    credit = 0.0
    for r in range(runs):
        run_id = f"run{r:05d}"
        run_ids.append(run_id)
        emit("run.created", "run", run_id, {"experiment_id": "e", "name": f"train-{r}", "params": {}, "tags": {},
                                            "description": "", "status": "running"})
        for _ in range(rng.randint(1, 5)):  # recent versions are used most (fan-in and fan-out)
            name, v = versions[max(0, len(versions) - 1 - int(rng.expovariate(1 / 15)))]
            emit("run.dataset_used", "run", run_id, {"dataset": name, "version": v, "manifest_digest": "0" * 64})
        for k in range(rng.randint(25, 65)):
            emit("run.params_logged" if k % 2 else "run.tag_set", "run", run_id,
                 {"params": {f"p{k}": "1"}} if k % 2 else {"key": f"t{k}", "value": "x"})
        for k in range(rng.randint(35, 65)):
            d = digest(rng)
            recent_artifacts.append(d)
            emit("run.artifact_logged", "run", run_id, {"name": f"ckpt-{k}.pt", "digest": d, "kind": "file",
                                                        "size": 10, "files": 1})
        emit("run.finished", "run", run_id, {"status": "finished", "message": ""})
        credit += per_run_versions - 20 / runs
        while credit >= 1 and len(versions) < versions_total:
            credit -= 1
            new_dataset_version(rng.random() < 0.3)
        if len(recent_artifacts) > 2000:
            del recent_artifacts[:1000]
        if rng.random() < model_versions_total / runs:
            model_id = rng.choice(models)
            version = model_versions.get(model_id, 0) + 1
            model_versions[model_id] = version
            source = rng.choice(run_ids[-200:])
            emit("model_version.created", "model", model_id, {"version": version, "run_id": source,
                                                               "artifact_digest": digest(rng), "description": ""})
            for alias in ("staging", "production", "canary"):
                emit("model_version.alias_set", "model", model_id,
                     {"alias": alias, "version": version, "previous_version": version - 1 or None})
    return out


def batches(events: list[Event], size: int) -> Iterator[list[Event]]:
    for start in range(0, len(events), size):
        yield events[start:start + size]


def build(events: list[Event], path: Path, size: int) -> tuple[LineageStore, float]:
    store = LineageStore(path)
    handler = projection()
    started = time.perf_counter()
    for batch in batches(events, size):
        store.apply(batch, handler)
    return store, time.perf_counter() - started


class DictGraph:
    """The comparison: adjacency dicts built from the event list, BFS in Python."""

    def __init__(self, events: list[Event]) -> None:
        self.down: dict[str, set[str]] = defaultdict(set)
        self.up: dict[str, set[str]] = defaultdict(set)
        alias_of: dict[str, str] = {}
        for e in events:
            d, p = e.data, e.project
            if e.type == "dataset.version_created":
                self.link(f"blob:{d['manifest_digest']}", f"dv:{p}/{e.aggregate_id}@{d['version']}")
            elif e.type == "run.dataset_used":
                self.link(f"dv:{p}/{d['dataset']}@{d['version']}", f"run:{p}/{e.aggregate_id}")
            elif e.type == "run.artifact_logged":
                self.link(f"run:{p}/{e.aggregate_id}", f"blob:{d['digest']}")
            elif e.type == "model_version.created":
                mv = f"mv:{p}/{e.aggregate_id}@{d['version']}"
                self.link(f"run:{p}/{d['run_id']}", mv)
                self.link(f"blob:{d['artifact_digest']}", mv)
            elif e.type == "model_version.alias_set":
                alias = f"alias:{p}/{e.aggregate_id}@{d['alias']}"
                if alias in alias_of:
                    self.down[alias_of[alias]].discard(alias)
                    self.up[alias].discard(alias_of[alias])
                alias_of[alias] = f"mv:{p}/{e.aggregate_id}@{d['version']}"
                self.link(alias_of[alias], alias)

    def link(self, src: str, dst: str) -> None:
        self.down[src].add(dst)
        self.up[dst].add(src)

    def walk(self, start: str, direction: str, depth: int) -> dict[str, int]:
        """BFS to ``depth``; "impact" is downstream without blobs (as the lineage service answers)."""
        adjacency = self.up if direction == "upstream" else self.down
        seen = {start: 0}
        frontier = [start]
        for level in range(1, depth + 1):
            nxt = []
            for node in frontier:
                for other in adjacency.get(node, ()):
                    if other not in seen:
                        seen[other] = level
                        nxt.append(other)
            frontier = nxt
            if not frontier:
                break
        del seen[start]
        if direction == "impact":
            return {k: v for k, v in seen.items() if not k.startswith("blob:")}
        return seen


def percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, int(round(0.95 * (len(ordered) - 1))))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--batch", default="512,4096",
                        help="events per apply, comma-separated (the service applies up to 4096)")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--depth", type=int, default=10)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()

    print(f"machine: {pyplatform.processor() or pyplatform.machine()}, {os.cpu_count()} cpus, "
          f"python {pyplatform.python_version()}, duckdb {duckdb.__version__}")
    started = time.perf_counter()
    events = generate(args.runs, args.seed)
    print(f"generated {len(events):,} events in {time.perf_counter() - started:.1f}s")
    # The service holds one batch of events at a time, not a million: keep the collector from
    # rescanning the generated list over and over while the build runs.
    gc.collect()
    gc.freeze()
    with tempfile.TemporaryDirectory() as tmp:
        for size in [int(b) for b in args.batch.split(",")]:
            path = Path(tmp) / f"lineage{size}.duckdb"
            store, seconds = build(events, path, size)
            counts = dict(store.query("SELECT 'nodes', count(*) FROM nodes UNION ALL "
                                      "SELECT 'edges', count(*) FROM edges"))
            print(f"build: {len(events) / seconds:,.0f} events/s ({seconds:.1f}s, batch {size}; "
                  f"{counts['nodes']:,} nodes, {counts['edges']:,} edges; {os.path.getsize(path) / 1e6:.0f} MB)")
        rss = psutil.Process().memory_info().rss
        started = time.perf_counter()
        graph = DictGraph(events)
        print(f"python dict graph built in {time.perf_counter() - started:.1f}s, "
              f"+{(psutil.Process().memory_info().rss - rss) / 1e6:.0f} MB resident")

        rng = random.Random(args.seed + 1)
        q = LineageQueries(store)
        mvs = [(e.aggregate_id, e.data["version"]) for e in events if e.type == "model_version.created"]
        dvs = [(e.aggregate_id, e.data["version"]) for e in events if e.type == "dataset.version_created"]
        cases = {
            "upstream of a model version": [("upstream", f"model_version:{PROJECT}/{m}@v{v}", f"mv:{PROJECT}/{m}@{v}")
                                            for m, v in rng.sample(mvs, min(args.queries, len(mvs)))],
            "impact of a dataset version": [("impact", f"dataset_version:{PROJECT}/{n}@v{v}",
                                             f"dv:{PROJECT}/{n}@{v}")
                                            for n, v in rng.sample(dvs, min(args.queries, len(dvs)))],
        }
        print(f"\nqueries at depth {args.depth}, {args.queries} random start nodes each (ms):")
        print(f"{'query':<30} {'duckdb p50':>10} {'p95':>8} {'python p50':>11} {'p95':>8} {'nodes p50':>9} {'max':>7}")
        for label, items in cases.items():
            duck, py, sizes = [], [], []
            for direction, key, dict_key in items:
                t0 = time.perf_counter()
                found = q.walk(node_id(key), "upstream" if direction == "upstream" else "downstream",
                               depth=args.depth, projects=[PROJECT], as_of=None,
                               kinds=IMPACT_KINDS if direction == "impact" else None)
                duck.append((time.perf_counter() - t0) * 1000)
                t0 = time.perf_counter()
                expected = graph.walk(dict_key, direction, args.depth)
                py.append((time.perf_counter() - t0) * 1000)
                assert len(found) == len(expected), (key, len(found), len(expected))
                sizes.append(len(found))
            (d50, d95), (p50, p95) = percentiles(duck), percentiles(py)
            print(f"{label:<30} {d50:>10.1f} {d95:>8.1f} {p50:>11.2f} {p95:>8.2f} "
                  f"{statistics.median(sizes):>9.0f} {max(sizes):>7}")
        store.close()


if __name__ == "__main__":
    main()
