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
- Drift: a window of the smallest size keeps its sample messages while it is open; when it
  closes they are profiled with the reference's histogram edges (``profile_samples(table,
  reference=...)``) and compared with the reference (``dataset_drift``). A larger window merges
  the profiles of the smallest windows it holds (the same edges, so they merge exactly) and
  compares that. Without a reference, or without the statistics library, drift is None.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

LATENCY_ALPHA = 0.01  # a quantile is within 1% (relative) of a value at that rank
_GAMMA = (1 + LATENCY_ALPHA) / (1 - LATENCY_ALPHA)
_LOG_GAMMA = math.log(_GAMMA)
LATENCY_FLOOR_MS = 1e-6  # latencies at or below this count as zero
ERROR_STATUS = 500


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

    @property
    def end(self) -> float:
        return self.start + self.seconds

    def add(self, status: int, latency_ms: float) -> None:
        self.requests += 1
        if status >= ERROR_STATUS:
            self.errors += 1
        self.latency.add(latency_ms)

    def summary(self) -> dict[str, Any]:
        """The closed window's row: counts, error rate, latency quantiles; drift and performance
        (None until the statistics library fills them in)."""
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


def profile_window(messages: list[bytes], start: float, end: float, reference: Reference) -> Any:
    """The profile of a window's sampled rows, on the reference's edges (None: no rows, no library)."""
    import pyarrow as pa

    from cairn.serving.inference_records import decode_batch

    library = _library()
    if library is None or not messages:
        return None
    tables = [_window_rows(decode_batch(data), start, end) for data in messages]
    tables = [t for t in tables if t.num_rows]
    if not tables:
        return None
    table = pa.concat_tables(tables, promote_options="permissive") if len(tables) > 1 else tables[0]
    return library[0](table, reference=reference.profile)


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


@dataclass(frozen=True)
class Request:
    """One sampled request as the windows count it (``prediction``: its first row's, JSON text)."""

    time: float
    status: int
    latency_ms: float
    request_id: str = ""
    prediction: str | None = None


@dataclass(frozen=True)
class Label:
    """A ground-truth label as it arrived (``time``: when it was posted; JSON text)."""

    request_id: str
    label: str
    time: float


def requests_in(table: Any) -> Iterator[Request]:
    """The requests of one decoded inference message (one per request id, shadows left out)."""
    from cairn.serving.inference_records import JSON_ENCODING_KEY

    columns = [c for c in ("row", "role", "time", "status", "latency_ms", "request_id", "prediction")
               if c in table.column_names]
    as_json = "prediction" in columns and (table.schema.field("prediction").metadata or {}).get(
        JSON_ENCODING_KEY) == b"json"
    data = table.select(columns).to_pydict()
    rows = len(data["time"]) if "time" in data else 0
    for i in range(rows):
        if "row" in data and (data["row"][i] or 0) != 0:
            continue
        if "role" in data and data["role"][i] == "shadow":
            continue
        when = data["time"][i]
        if when is None or not math.isfinite(when):
            continue
        latency = data["latency_ms"][i] if "latency_ms" in data else None
        prediction = data["prediction"][i] if "prediction" in data else None
        if prediction is not None and not as_json:
            prediction = json.dumps(prediction)
        yield Request(float(when), int(data["status"][i] or 0) if "status" in data else 0,
                      float(latency) if latency is not None else math.nan,
                      str(data["request_id"][i]) if "request_id" in data else "", prediction)


def label_in(data: bytes) -> Label | None:
    """A feedback message (``{"request_id", "label", "time"}``); None when it is not one."""
    try:
        body = json.loads(data)
        return Label(str(body["request_id"]), json.dumps(body["label"]), float(body["time"]))
    except (ValueError, KeyError, TypeError):
        return None


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
