"""Metric batches: parsing JSON or Arrow IPC bodies into one validated Arrow table.

A point is ``{key, value, step, timestamp}``. Values are floats; NaN and +-inf are allowed (JSON
carries them as the strings "NaN", "Infinity", "-Infinity"); anything else is a 422 that names the
point. Batches above ``max_points`` are a 413.
"""

from __future__ import annotations

import math
import time
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from cairn.kernel.errors import InvalidInput, PayloadTooLarge
from cairn.kernel.ids import KEY_RE, anchored
from cairn.protocol import metric_batch_schema

SCHEMA = metric_batch_schema()
KEY_PATTERN = KEY_RE  # metric keys follow the shared key rule (params, tags, metrics)
BATCH_ID_PATTERN = anchored(r"[A-Za-z0-9_.:-]{1,128}")
SPECIAL = {"NaN": math.nan, "nan": math.nan, "Infinity": math.inf, "inf": math.inf,
           "-Infinity": -math.inf, "-inf": -math.inf}


def check_batch_id(batch_id: Any) -> str:
    if not isinstance(batch_id, str) or not BATCH_ID_PATTERN.match(batch_id):
        raise InvalidInput("batch_id must be 1-128 characters of letters, digits, '_', '.', ':' or '-'; "
                           "make one per batch and reuse it on retries")
    return batch_id


def _value(raw: Any, index: int) -> float:
    if isinstance(raw, bool) or raw is None:
        raise InvalidInput(f"point {index}: value {raw!r} is not a number", details={"point": index})
    if isinstance(raw, (int, float)):
        return float(raw)
    if isinstance(raw, str) and raw in SPECIAL:
        return SPECIAL[raw]
    raise InvalidInput(f"point {index}: value {raw!r} is not a number (use a number, or \"NaN\", "
                       "\"Infinity\", \"-Infinity\")", details={"point": index})


def _timestamp(raw: Any, index: int) -> float:
    if isinstance(raw, bool) or not isinstance(raw, (int, float)) or not math.isfinite(raw):
        raise InvalidInput(f"point {index}: timestamp {raw!r} must be a finite number of seconds since the "
                           "epoch (or left out)", details={"point": index})
    return float(raw)


def _step(raw: Any, index: int) -> int:
    if isinstance(raw, bool) or not isinstance(raw, int) or not -(2**63) <= raw < 2**63:
        raise InvalidInput(f"point {index}: step {raw!r} must be an integer", details={"point": index})
    return raw


def _check_key(key: Any, index: int) -> str:
    if not isinstance(key, str) or not KEY_PATTERN.match(key):
        raise InvalidInput(f"point {index}: key {key!r} must be 1-250 characters of letters, digits, "
                           "space, '_', '.', '/', ':' or '-'", details={"point": index})
    return key


def _check_size(count: int, max_points: int) -> None:
    if count > max_points:
        raise PayloadTooLarge(f"the batch has {count} points; send at most {max_points} per batch",
                              details={"limit": max_points})
    if count == 0:
        raise InvalidInput("the batch has no points")


def parse_json(body: Any, max_points: int) -> tuple[str, pa.Table]:
    """``{batch_id, points: [...]}`` -> (batch id, table)."""
    if not isinstance(body, dict) or not isinstance(body.get("points"), list):
        raise InvalidInput("send {\"batch_id\": ..., \"points\": [{\"key\", \"value\", \"step\", \"timestamp\"}]}")
    batch_id = check_batch_id(body.get("batch_id"))
    points = body["points"]
    _check_size(len(points), max_points)
    now = time.time()
    keys, values, steps, stamps = [], [], [], []
    for i, point in enumerate(points):
        if not isinstance(point, dict):
            raise InvalidInput(f"point {i} is not an object", details={"point": i})
        keys.append(_check_key(point.get("key"), i))
        values.append(_value(point.get("value"), i))
        steps.append(_step(point.get("step", 0), i))
        stamp = point.get("timestamp")
        stamps.append(now if stamp is None else _timestamp(stamp, i))
    return batch_id, pa.table([keys, values, steps, stamps], schema=SCHEMA)


def _is_number(kind: pa.DataType) -> bool:
    return bool(pa.types.is_floating(kind) or pa.types.is_integer(kind))


def parse_arrow(data: bytes, batch_id: str | None, max_points: int) -> tuple[str, pa.Table]:
    """An Arrow IPC stream with columns key, value, step, timestamp; the batch id comes from the
    ``batch_id`` query parameter."""
    batch_id = check_batch_id(batch_id)
    try:
        table = pa.ipc.open_stream(data).read_all()
    except (pa.ArrowInvalid, OSError) as err:
        raise InvalidInput(f"the body is not an Arrow IPC stream: {err}") from None
    missing = [c for c in ("key", "value", "step") if c not in table.column_names]
    if missing:
        raise InvalidInput(f"the Arrow batch lacks column(s) {missing}; send key, value, step, timestamp")
    _check_size(table.num_rows, max_points)
    for name, kind_ok, kind in (("value", _is_number, "a number"), ("step", pa.types.is_integer, "an integer"),
                                ("timestamp", _is_number, "a number")):
        if name in table.column_names and not kind_ok(table.schema.field(name).type):
            raise InvalidInput(f"the Arrow column {name!r} is {table.schema.field(name).type}; each {name} must be "
                               f"{kind} (send float64 values and timestamps, int64 steps)")
    if "timestamp" not in table.column_names:
        table = table.append_column("timestamp", pa.array([time.time()] * table.num_rows, pa.float64()))
    try:
        table = table.select(["key", "value", "step", "timestamp"]).cast(SCHEMA)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as err:
        raise InvalidInput(f"the Arrow batch has the wrong column types ({err}); key is a string, value "
                           "and timestamp floats, step an integer") from None
    finite = pc.is_finite(table.column("timestamp"))
    if not pc.all(finite).as_py():
        index = finite.to_pylist().index(False)
        raise InvalidInput(f"point {index}: timestamp must be a finite number of seconds since the epoch",
                           details={"point": index})
    for name in SCHEMA.names:
        nulls = table.column(name).null_count
        if nulls:
            index = table.column(name).to_pylist().index(None)
            raise InvalidInput(f"point {index}: {name} is null", details={"point": index})
    for key in table.column("key").unique().to_pylist():
        if not KEY_PATTERN.match(key):
            index = table.column("key").to_pylist().index(key)
            _check_key(key, index)
    return batch_id, table


def to_ipc(table: pa.Table, compression: str | None = "lz4") -> bytes:
    """An Arrow IPC stream, its buffers LZ4-compressed (repeated keys shrink to almost nothing)."""
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema, options=pa.ipc.IpcWriteOptions(compression=compression)) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def from_ipc(data: bytes) -> pa.Table:
    return pa.ipc.open_stream(data).read_all()
