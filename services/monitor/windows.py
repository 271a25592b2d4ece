"""What a window holds and how a sample batch goes into it: request and error counts and a
latency sketch, kept while the window is open and summarised when it closes.

Pure functions and small value classes (no I/O): ``window_store`` persists them and
``consumer`` feeds them. The statistics library (``cairn.monitor``: profiles, drift,
performance) is called from here only, so the parts that use it stay in one module.

- A window is ``[start, start + size)`` by sample time, per deployment and size; ``start`` is a
  multiple of the size since the epoch (tumbling windows that line up across restarts).
- A request counts once (a request of many input rows has many Arrow rows; ``row == 0`` is the
  request). Shadow copies are not traffic: left out, as in the deployments list's figures.
- An error is an answer with HTTP status >= 500 (a 4xx is the caller's mistake, not the model's).
- Latencies go into a log-bucket sketch (relative accuracy ``LATENCY_ALPHA``): bounded memory
  whatever the window's length, mergeable, and quantiles within 1% of the exact ones.
- Drift: a window of the smallest size keeps a running profile of its sampled rows on the
  reference's histogram edges: each batch of messages is profiled once (``profile_samples(table,
  reference=...)``) and merged in (profiles are mergeable), so no raw message is kept; when the
  window closes that profile is compared with the reference (``dataset_drift``). A larger window
  merges the profiles of the smallest windows it holds (the same edges, so they merge exactly)
  and compares that. Without a reference, or without the statistics library, drift is None; a
  window whose reference changed while it was open has no drift (its rows were binned on the
  old reference's edges).
- A message's requests come as columns (``samples.Requests``), never one Python object per
  request: the monitor ingests hundreds of thousands a second.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

LATENCY_ALPHA = 0.01  # a quantile is within 1% (relative) of a value at that rank
_GAMMA = (1 + LATENCY_ALPHA) / (1 - LATENCY_ALPHA)
_LOG_GAMMA = math.log(_GAMMA)
LATENCY_FLOOR_MS = 1e-6  # latencies at or below this count as zero
ERROR_STATUS = 500


LATENCY_NONE = int(np.iinfo(np.int64).min)  # a bucket key for "not a latency" (NaN, negative): not counted
LATENCY_ZERO = LATENCY_NONE + 1  # the key of a latency at or below LATENCY_FLOOR_MS


def latency_keys(latencies_ms: np.ndarray) -> np.ndarray:
    """Each latency's sketch bucket as ``LatencySketch.add`` finds it (``LATENCY_ZERO`` /
    ``LATENCY_NONE`` for the zeros and the values it skips): computed once per message and
    shared by the windows of every size."""
    keys = np.full(latencies_ms.size, LATENCY_NONE, dtype=np.int64)
    valid = np.isfinite(latencies_ms) & (latencies_ms >= 0)
    positive = valid & (latencies_ms > LATENCY_FLOOR_MS)
    keys[valid & ~positive] = LATENCY_ZERO
    keys[positive] = np.ceil(np.log(latencies_ms[positive]) / _LOG_GAMMA)
    return keys


@dataclass
class LatencySketch:
    """Counts of latencies by bucket ``k`` (``gamma**(k-1) < x <= gamma**k``), plus zeros."""

    buckets: dict[int, int] = field(default_factory=dict)
    zero: int = 0

    def add(self, latency_ms: float) -> None:
        if not math.isfinite(latency_ms) or latency_ms < 0:
            return
        if latency_ms <= LATENCY_FLOOR_MS:
            self.zero += 1
            return
        k = math.ceil(math.log(latency_ms) / _LOG_GAMMA)
        self.buckets[k] = self.buckets.get(k, 0) + 1

    def add_many(self, latencies_ms: np.ndarray) -> None:
        """``add`` of every value, bucketed with numpy (the same buckets)."""
        self.add_keys(latency_keys(latencies_ms))

    def add_keys(self, keys: np.ndarray) -> None:
        """Count latencies already bucketed by ``latency_keys``."""
        self.zero += int(np.count_nonzero(keys == LATENCY_ZERO))
        keys = keys[keys > LATENCY_ZERO]
        if keys.size:
            low = int(keys.min())
            counts = np.bincount(keys - low)
            used = np.flatnonzero(counts)
            buckets = self.buckets
            for k, n in zip((used + low).tolist(), counts[used].tolist(), strict=True):
                buckets[k] = buckets.get(k, 0) + n

    @property
    def count(self) -> int:
        return self.zero + sum(self.buckets.values())

    def quantile(self, q: float) -> float | None:
        """The value at rank ``q`` (0..1) within the sketch's accuracy; None when empty."""
        total = self.count
        if total == 0:
            return None
        rank = q * (total - 1)
        seen = self.zero
        if rank < seen:
            return 0.0
        for k in sorted(self.buckets):
            seen += self.buckets[k]
            if rank < seen:
                return 2 * _GAMMA ** k / (_GAMMA + 1)  # the bucket's middle: within alpha of any value in it
        return 2 * _GAMMA ** max(self.buckets) / (_GAMMA + 1)

    def to_json(self) -> dict[str, Any]:
        return {"zero": self.zero, "buckets": {str(k): n for k, n in sorted(self.buckets.items())}}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "LatencySketch":
        return cls({int(k): int(n) for k, n in data.get("buckets", {}).items()}, int(data.get("zero", 0)))


@dataclass
class OpenWindow:
    """The running state of one open window."""

    project: str
    deployment: str
    size: str
    start: float
    seconds: int
    requests: int = 0
    errors: int = 0
    latency: LatencySketch = field(default_factory=LatencySketch)
    # latency keys counted but not yet in the sketch: added once per batch (``flush``), since
    # the sketch's buckets are a dict walked in Python
    unsketched: list[np.ndarray] = field(default_factory=list, repr=False, compare=False)

    @property
    def end(self) -> float:
        return self.start + self.seconds

    def add(self, status: int, latency_ms: float) -> None:
        self.requests += 1
        if status >= ERROR_STATUS:
            self.errors += 1
        self.latency.add(latency_ms)

    def add_many(self, errors: np.ndarray, latency_keys: np.ndarray) -> None:
        """Count requests: ``errors`` (status >= ERROR_STATUS) and their ``latency_keys``."""
        self.requests += int(errors.size)
        self.errors += int(np.count_nonzero(errors))
        self.unsketched.append(latency_keys)

    def flush(self) -> None:
        if self.unsketched:
            self.latency.add_keys(np.concatenate(self.unsketched))
            self.unsketched.clear()

    def summary(self) -> dict[str, Any]:
        """The closed window's row: counts, error rate, latency quantiles; drift and performance
        (None until the statistics library fills them in)."""
        self.flush()
        return {"project": self.project, "deployment": self.deployment, "size": self.size, "start": self.start,
                "end": self.end, "requests": self.requests, "errors": self.errors,
                "error_rate": self.errors / self.requests if self.requests else None,
                "latency_p50_ms": _round(self.latency.quantile(0.50)),
                "latency_p95_ms": _round(self.latency.quantile(0.95)),
                "latency_p99_ms": _round(self.latency.quantile(0.99)),
                "drift": None, "performance": None}


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 6)


def window_start(time_s: float, seconds: int) -> float:
    return float(math.floor(time_s / seconds) * seconds)


@dataclass(frozen=True)
class Reference:
    """A deployment's reference profile (``cairn.monitor.profile.Profile``) and its digest."""

    digest: str
    profile: Any


def _library() -> Any:
    """The statistics library's two entry points, or None where it is not installed."""
    try:
        from cairn.monitor.drift import dataset_drift
        from cairn.monitor.profile import Profile, profile_samples
    except ImportError:
        return None
    return profile_samples, dataset_drift, Profile


def _window_rows(table: Any, start: float, end: float) -> Any:
    """The table's rows of requests answered in ``[start, end)``, shadow copies left out."""
    import pyarrow.compute as pc

    keep = pc.and_(pc.greater_equal(table.column("time"), start), pc.less(table.column("time"), end))
    if "role" in table.column_names:
        keep = pc.and_(keep, pc.not_equal(pc.fill_null(table.column("role"), ""), "shadow"))
    return table.filter(keep)


def window_table(table: Any, start: float, end: float) -> Any:
    """Sampled rows (``sampled_rows``) answered in ``[start, end)``: the table itself when all are."""
    import pyarrow.compute as pc

    bounds = pc.min_max(table.column("time")).as_py()
    if bounds["min"] is not None and start <= bounds["min"] and bounds["max"] < end:
        return table
    return _window_rows(table, start, end)


def profile_tables(tables: list[Any], reference: Reference) -> Any:
    """The profile of some messages' window rows, on the reference's edges (None: no rows, no library)."""
    import pyarrow as pa

    library = _library()
    tables = [t for t in tables if t is not None and t.num_rows]
    if library is None or not tables:
        return None
    table = pa.concat_tables(tables, promote_options="permissive") if len(tables) > 1 else tables[0]
    # one chunk: the profile makes one pass of the core per chunk, and a chunk per message costs
    # a pass (and a merge) per message and column
    return library[0](table.combine_chunks(), reference=reference.profile)


def profile_window(messages: list[bytes], start: float, end: float, reference: Reference) -> Any:
    """The profile of a window's sampled messages (Arrow bytes), on the reference's edges: the
    windows kept raw messages before they kept running profiles, and a window opened then
    still closes with them."""
    from cairn.serving.inference_records import decode_batch

    return profile_tables([window_table(decode_batch(data), start, end) for data in messages], reference)


def merge_two(first: Any, second: Any) -> Any:
    """``first`` merged with ``second`` (either may be None); a ValueError when they cannot merge."""
    return second if first is None else first if second is None else first.merge(second)


def profile_from_json(data: bytes) -> Any:
    library = _library()
    return None if library is None else library[2].from_json(data)


def merge_profiles(profiles: list[bytes]) -> Any:
    """One profile of several windows' profiles (canonical JSON); None when they cannot merge
    (columns that came and went between windows) or there are none."""
    library = _library()
    if library is None or not profiles:
        return None
    merged = library[2].from_json(profiles[0])
    for data in profiles[1:]:
        try:
            merged = merged.merge(library[2].from_json(data))
        except ValueError:
            return None
    return merged


def drift_summary(current: Any, reference: Reference) -> dict[str, Any] | None:
    """The window's drift against the reference: the dataset's share of drifted columns and,
    per column, the deciding method's score, threshold and verdict."""
    library = _library()
    if library is None or current is None:
        return None
    names = [n for n in reference.profile.columns if n in current.columns
             and reference.profile.roles.get(n, "feature") in ("feature", "prediction")
             and reference.profile.columns[n].kind == current.columns[n].kind]
    if not names:
        return None
    drift = library[1](reference.profile, current, columns=names).to_dict()
    return {"reference": reference.digest, "share": drift["share"], "drifted": drift["drifted"],
            "drifted_columns": drift["drifted_columns"], "drift_share": drift["drift_share"],
            "columns": {c["column"]: {"method": c["method"], "score": c["score"], "threshold": c["threshold"],
                                      "drifted": c["drifted"], "p_value": c["p_value"]}
                        for c in drift["columns"]}}


def performance(pairs: list[tuple[str, str]]) -> dict[str, Any] | None:
    """Live performance of (prediction, label) pairs (JSON text each): regression metrics when
    any value is a fraction, else classification metrics (a list of class probabilities is its
    argmax, and for two classes the second one's probability is the ROC AUC score). None
    without pairs or without the statistics library."""
    try:
        from cairn.monitor.performance import classification_metrics, regression_metrics
    except ImportError:
        return None
    if not pairs:
        return None
    predicted, truth, scores = [], [], []
    for prediction_text, label_text in pairs:
        prediction, label = json.loads(prediction_text), json.loads(label_text)
        if isinstance(prediction, list) and prediction and all(isinstance(p, int | float) for p in prediction):
            scores.append(float(prediction[1]) if len(prediction) == 2 else math.nan)
            prediction = int(max(range(len(prediction)), key=prediction.__getitem__))
        else:
            scores.append(math.nan)
        predicted.append(prediction)
        truth.append(label)
    values = predicted + truth
    if any(isinstance(v, float) and not v.is_integer() for v in values):
        metrics = regression_metrics([float(v) for v in truth], [float(v) for v in predicted])
    else:
        if len({type(v) for v in values}) > 1 and not all(isinstance(v, int | float) for v in values):
            predicted, truth = [str(v) for v in predicted], [str(v) for v in truth]
        score = scores if not any(math.isnan(x) for x in scores) else None
        metrics = classification_metrics(truth, predicted, score)
    return {**{k: (v if math.isfinite(v) else None) for k, v in metrics.items()}, "labels": len(pairs)}


def downsample(rows: Sequence[dict[str, Any]], max_points: int,
               merge: Callable[[Sequence[dict[str, Any]]], dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """At most ``max_points`` rows: consecutive windows merged in equal groups (counts summed,
    error rate recomputed, the worst latency quantile of the group kept: a chart must not hide
    a spike)."""
    if len(rows) <= max_points:
        return list(rows)
    group = -(-len(rows) // max_points)
    return [(merge or _merge)(rows[i:i + group]) for i in range(0, len(rows), group)]


def _merge(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    requests = sum(r["requests"] for r in rows)
    errors = sum(r["errors"] for r in rows)
    out = {**rows[0], "end": rows[-1]["end"], "requests": requests, "errors": errors,
           "error_rate": errors / requests if requests else None, "windows": len(rows)}
    for q in ("latency_p50_ms", "latency_p95_ms", "latency_p99_ms"):
        values = [r[q] for r in rows if r[q] is not None]
        out[q] = max(values) if values else None
    return out
