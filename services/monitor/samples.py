"""What the monitor reads from the inference stream: a sample message's requests as columns
(``Requests``: numpy arrays of time, status and latency, lists of request ids and prediction
texts) and a feedback message's label.

Never one Python object per request: the monitor ingests hundreds of thousands of sampled
requests a second (benchmarks/bench_monitor.py --ingest), and a per-request object was most of
its cost. ``windows`` counts these columns; ``window_store`` keeps them.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

import numpy as np


def sampled_rows(table: Any) -> Any:
    """A decoded message's rows that windows count and profile: shadow copies and rows without
    a finite time left out (the table itself when there are none of those)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if "time" not in table.column_names:
        return table.slice(0, 0)
    keep = np.isfinite(_numbers(table.column("time"), pa.float64(), math.nan))
    if "role" in table.column_names:
        shadow = pc.equal(table.column("role"), "shadow")
        if pc.any(shadow).as_py():
            keep &= ~pc.fill_null(shadow, False).to_numpy(zero_copy_only=False)
    return table if keep.all() else table.filter(pa.array(keep))


def _numbers(column: Any, kind: Any, missing: float) -> np.ndarray:
    """A numeric column as numpy of ``kind``, nulls as ``missing`` (no copy when it has none)."""
    import pyarrow.compute as pc

    column = column.cast(kind) if column.type != kind else column
    return (pc.fill_null(column, missing) if column.null_count else column).to_numpy()


@dataclass(frozen=True)
class Requests:
    """The sampled requests of one message as columns (a request is its ``row == 0`` row; shadow
    copies and rows without a finite time left out): ``prediction`` is the first row's
    prediction as JSON text (None: none), ``request_id`` is text."""

    time: np.ndarray  # float64 unix seconds
    status: np.ndarray  # int64 (a missing status is 0)
    latency_ms: np.ndarray  # float64 (a missing latency is NaN)
    request_id: list[str]
    prediction: list[str | None]

    def __len__(self) -> int:
        return int(self.time.size)

    def take(self, mask: np.ndarray) -> Requests:
        index = np.flatnonzero(mask).tolist()
        return Requests(self.time[mask], self.status[mask], self.latency_ms[mask],
                        [self.request_id[i] for i in index], [self.prediction[i] for i in index])


NO_REQUESTS = Requests(np.zeros(0), np.zeros(0, dtype=np.int64), np.zeros(0), [], [])


@dataclass(frozen=True)
class Label:
    """A ground-truth label as it arrived (``time``: when it was posted; JSON text)."""

    request_id: str
    label: str
    time: float


def requests_in(table: Any, *, sampled: bool = False) -> Requests:
    """The requests of one decoded inference message (one per request id, shadows left out);
    ``sampled``: the table is ``sampled_rows``' answer already."""
    import pyarrow as pa

    from cairn.serving.inference_records import JSON_ENCODING_KEY

    table = table if sampled else sampled_rows(table)
    names = table.column_names
    if "time" not in names or table.num_rows == 0:
        return NO_REQUESTS
    when = _numbers(table.column("time"), pa.float64(), math.nan)
    keep = _numbers(table.column("row"), pa.int64(), 0) == 0 if "row" in names else np.ones(when.size, bool)
    rows = table.filter(pa.array(keep)) if not keep.all() else table
    status = (_numbers(rows.column("status"), pa.int64(), 0) if "status" in names
              else np.zeros(rows.num_rows, dtype=np.int64))
    latency = (_numbers(rows.column("latency_ms"), pa.float64(), math.nan) if "latency_ms" in names
               else np.full(rows.num_rows, math.nan))
    request_id = [str(r) for r in rows.column("request_id").to_pylist()] if "request_id" in names \
        else [""] * rows.num_rows
    if "prediction" in names:
        column = rows.column("prediction")
        as_json = (table.schema.field("prediction").metadata or {}).get(JSON_ENCODING_KEY) == b"json"
        prediction = column.to_pylist() if as_json else _json_texts(column)
    else:
        prediction = [None] * rows.num_rows
    return Requests(when[keep], status, latency, request_id, prediction)


def _json_texts(column: Any) -> list[str | None]:
    """Each value as ``json.dumps`` writes it (None stays None); numbers without a call per value."""
    import pyarrow as pa

    kind = column.type
    if pa.types.is_integer(kind) and column.null_count == 0:
        return list(map(repr, column.to_numpy().tolist()))  # json.dumps of an int is its repr
    if pa.types.is_floating(kind) and column.null_count == 0 and len(column):
        values = column.to_numpy().astype(np.float64, copy=False)
        if np.isfinite(values).all():
            texts: list[str | None] = list(_float_texts(values))
            return texts
    return [None if v is None else json.dumps(v) for v in column.to_pylist()]


def _float_texts(values: np.ndarray) -> list[str]:
    """``json.dumps`` (that is, ``repr``) of each finite float, a third of the cost: orjson
    writes the same shortest digits, and in the same positional form wherever repr does not
    switch to an exponent (0 and 1e-4 <= |x| < 1e16); repr writes the others
    (tests/monitor_service/test_monitor_window_store.py compares the two over many magnitudes)."""
    import orjson

    texts = orjson.dumps(values.tolist()).decode()[1:-1].split(",")
    magnitude = np.abs(values)
    for i in np.flatnonzero(~(((magnitude >= 1e-4) & (magnitude < 1e16)) | (values == 0))).tolist():
        texts[i] = repr(float(values[i]))
    return texts


def label_in(data: bytes) -> Label | None:
    """A feedback message (``{"request_id", "label", "time"}``); None when it is not one."""
    try:
        body = json.loads(data)
        return Label(str(body["request_id"]), json.dumps(body["label"]), float(body["time"]))
    except (ValueError, KeyError, TypeError):
        return None
