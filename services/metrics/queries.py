"""Reading metrics: one key of one run (full or downsampled), many runs, and the cross-run
aggregate by step. Parts listed in SQLite plus the in-memory tail, so reads see every acked point."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from cairn.core import downsample_minmax, lttb, segment_quantiles, segment_reduce
from cairn.services.metrics.store import MetricsStore
from cairn.services.metrics.writer import Tail

COLUMNS = ["step", "value", "timestamp"]
DTYPES = (("step", np.int64), ("value", np.float64), ("timestamp", np.float64))


@dataclass
class Series:
    """One key of one run, ordered by step (points with equal steps in the order they arrived)."""

    steps: np.ndarray
    values: np.ndarray
    timestamps: np.ndarray

    def take(self, index: np.ndarray) -> Series:
        return Series(self.steps[index], self.values[index], self.timestamps[index])

    def to_arrow(self, metadata: dict[str, str]) -> pa.Table:
        return pa.table({"step": self.steps, "value": self.values, "timestamp": self.timestamps}).replace_schema_metadata(metadata)

    def to_json(self) -> dict[str, list[Any]]:
        return {"steps": self.steps.tolist(), "values": [json_float(v) for v in self.values.tolist()],
                "timestamps": self.timestamps.tolist()}


def json_float(value: float) -> float | str:
    """JSON has no NaN or infinities: they travel as the strings "NaN", "Infinity", "-Infinity"."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return value


def read_key(path: str, key: str) -> pa.Table | None:
    """One key's rows of a Parquet part. Parts are sorted by key, so row-group statistics skip the
    groups of other keys, and groups holding only this key are read without the key column."""
    part = pq.ParquetFile(path)
    meta = part.metadata
    key_index = part.schema_arrow.get_field_index("key")
    groups, only_key = [], True
    for i in range(meta.num_row_groups):
        stats = meta.row_group(i).column(key_index).statistics
        if stats is None or not stats.has_min_max:
            groups.append(i)
            only_key = False
        elif stats.min <= key <= stats.max:
            groups.append(i)
            only_key = only_key and stats.min == stats.max == key
    if not groups:
        return None
    if only_key:
        return part.read_row_groups(groups, columns=COLUMNS)
    table = part.read_row_groups(groups, columns=["key", *COLUMNS])
    return table.filter(pc.equal(table.column("key"), key)).select(COLUMNS)


def load_series(store: MetricsStore, root: Path, tail: Tail, project: str, run_id: str, key: str) -> Series:
    """Every point of ``key`` in the run. Runs without awaiting, so compaction cannot swap files
    between listing the parts and opening them."""
    tables = []
    for name in store.parts(project, run_id):
        table = read_key(str(root / project / run_id / name), key)
        if table is not None:
            tables.append(table)
    for batch in tail.of_run(project, run_id):
        tables.append(batch.filter(pc.equal(batch.column("key"), key)).select(COLUMNS))
    steps, values, stamps = (_concat(tables, name, dtype) for name, dtype in DTYPES)
    if steps.size > 1 and not bool(np.all(steps[1:] >= steps[:-1])):  # usually in order already
        order = np.argsort(steps, kind="stable")
        steps, values, stamps = steps[order], values[order], stamps[order]
    return Series(steps, values, stamps)


def _concat(tables: list[pa.Table], name: str, dtype: type) -> np.ndarray:
    """One column of many tables as one array, copied once."""
    chunks = [chunk.to_numpy(zero_copy_only=False) for t in tables for chunk in t.column(name).chunks]
    if not chunks:
        return np.empty(0, dtype=dtype)
    return np.concatenate(chunks).astype(dtype, copy=False)


def step_range(series: Series, step_min: int | None, step_max: int | None) -> Series:
    """The points with ``step_min <= step <= step_max`` (either bound optional). Steps are sorted,
    so two binary searches cut the range without a pass over the series."""
    if step_min is None and step_max is None:
        return series
    lo = 0 if step_min is None else int(np.searchsorted(series.steps, step_min, side="left"))
    hi = series.steps.size if step_max is None else int(np.searchsorted(series.steps, step_max, side="right"))
    return series.take(np.arange(lo, max(lo, hi)))


def downsample(series: Series, points: int | None, method: str) -> Series:
    """Deterministic downsampling to at most ``points``: minmax (no spike hidden) or LTTB."""
    if points is None or series.steps.size <= points:
        return series
    pick = downsample_minmax if method == "minmax" else lttb
    return series.take(np.asarray(pick(series.steps, series.values, points)))


def cross_run_aggregate(series: list[Series], points: int | None) -> dict[str, list[Any]]:
    """Mean, std, min, max and median across runs at each step (a run's last value at a step)."""
    per_run = []
    for s in series:
        if s.steps.size:
            last = np.r_[s.steps[1:] != s.steps[:-1], True]  # last point of each step
            per_run.append((s.steps[last], s.values[last]))
    if not per_run:
        return {"steps": [], "mean": [], "std": [], "min": [], "max": [], "median": [], "count": []}
    steps = np.concatenate([p[0] for p in per_run])
    values = np.concatenate([p[1] for p in per_run])
    order = np.argsort(steps, kind="stable")
    steps, values = steps[order], values[order]
    starts = np.flatnonzero(np.r_[True, steps[1:] != steps[:-1]])
    offsets = np.r_[starts, steps.size].astype(np.int64)
    stats = segment_reduce(values, offsets=offsets, ops=("count", "mean", "std", "min", "max"))
    median = segment_quantiles(values, 0.5, offsets=offsets)
    unique = steps[starts]
    index = np.arange(unique.size)
    if points is not None and unique.size > points:
        index = np.asarray(downsample_minmax(unique, np.nan_to_num(stats["mean"]), points))
    out: dict[str, list[Any]] = {"steps": unique[index].tolist()}
    for name, column in (("mean", stats["mean"]), ("std", stats["std"]), ("min", stats["min"]),
                         ("max", stats["max"]), ("median", median)):
        out[name] = [json_float(v) for v in np.asarray(column)[index].tolist()]
    out["count"] = np.asarray(stats["count"])[index].tolist()
    return out
