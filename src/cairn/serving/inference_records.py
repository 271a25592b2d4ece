"""The inference log's records: sampled requests as Arrow IPC record batches, labels as JSON,
and reading both back by time from the ``CAIRN_INFERENCE`` stream.

One input row is one Arrow row (``request_id`` and ``row`` say which request and which of its
rows). Features are a **struct column** whose fields are the request's columns, not JSON text:
the monitor computes drift and windows per feature, and a struct's child arrays are read per
column, typed and zero-copy (``batch.column("features").field("amount")``), where JSON text would
have to be parsed row by row on every read. Requests whose columns cannot share a struct (a
column's type differs) go in messages of their own, so every message has one schema.
Predictions keep the type Arrow infers (numbers, classes, probability vectors), or JSON text
(field metadata ``cairn.encoding: json``) when the rows of one message cannot share a type.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections import deque
from collections.abc import AsyncIterator, Iterable, Sequence
from datetime import datetime, timezone
from typing import Any

from cairn.protocol import INFERENCE_STREAM, feedback_subject, inference_subject
from cairn.serving.sink import InferenceSample

SCAN_BATCH = 256  # messages fetched per round trip when reading back
MAX_SCAN_MESSAGES = 200_000  # a read never walks more than this many messages
JSON_ENCODING_KEY = b"cairn.encoding"  # field metadata: b"json" on a prediction column of JSON text


def _frame(features: Any) -> Any:
    """The sample's features as a DataFrame (None: no features)."""
    import numpy as np
    import pandas as pd

    if features is None:
        return None
    if isinstance(features, pd.DataFrame):
        frame = features
    elif isinstance(features, pd.Series):
        frame = features.to_frame().T
    elif isinstance(features, dict):
        frame = pd.DataFrame({k: (v if isinstance(v, (list, tuple, np.ndarray)) else [v]) for k, v in features.items()})
    else:
        array = np.asarray(features)
        if array.ndim == 1:
            array = array.reshape(1, -1)
        frame = pd.DataFrame(array.reshape(array.shape[0], -1))
    return frame  # column names become text once per message (in _encode_group), not per sample


def _predictions(prediction: Any, rows: int) -> list[Any]:
    """One prediction per row (a ragged or missing prediction becomes None for every row)."""
    import numpy as np

    if prediction is None:
        return [None] * rows
    values = prediction.tolist() if isinstance(prediction, np.ndarray) else list(prediction) \
        if isinstance(prediction, (list, tuple)) else [prediction]
    values = [v.tolist() if isinstance(v, np.ndarray) else v for v in values]
    if len(values) != rows:
        return [values] * rows if rows else []
    return values


def _signature(frame: Any) -> tuple[tuple[str, str], ...]:
    if frame is None or not len(frame.columns):
        return ()
    return tuple((str(c), str(t)) for c, t in zip(frame.columns, frame.dtypes, strict=True))


def encode_samples(samples: Sequence[InferenceSample]) -> list[tuple[bytes, list[InferenceSample]]]:
    """Arrow IPC stream bytes (one record batch each) and the samples each holds.

    The common case is one message: all features concatenated into one struct column (a field
    a request lacks is null there). Only when that fails (one column with conflicting types) are
    the samples grouped by their exact columns and types, one message per group: comparing
    every sample's columns costs more than the concatenation, so it is not done up front."""
    import pyarrow as pa

    framed = [(sample, _frame(sample.features)) for sample in samples]
    try:
        return [(_encode_group(framed), list(samples))]
    except (pa.ArrowException, ValueError, TypeError):
        if len(framed) == 1:
            raise
    groups: dict[tuple[tuple[str, str], ...], list[tuple[InferenceSample, Any]]] = {}
    for sample, frame in framed:
        groups.setdefault(_signature(frame), []).append((sample, frame))
    if len(groups) == 1:  # the same columns and types, and still not encodable: the caller splits
        raise ValueError("samples with these features cannot be encoded together")
    return [(_encode_group(group), [sample for sample, _ in group]) for group in groups.values()]


def _encode_group(group: list[tuple[InferenceSample, Any]]) -> bytes:
    import pandas as pd
    import pyarrow as pa

    columns: dict[str, list[Any]] = {name: [] for name in
                                     ("request_id", "row", "time", "model", "version", "deployment", "replica",
                                      "role", "status", "latency_ms")}
    predictions: list[Any] = []
    frames = []
    for sample, frame in group:
        rows = len(frame) if frame is not None and len(frame.columns) else max(1, _len(sample.prediction))
        for row in range(rows):
            for name, value in (("request_id", sample.request_id), ("row", row), ("time", sample.time),
                                ("model", sample.model), ("version", sample.version),
                                ("deployment", sample.deployment), ("replica", sample.replica),
                                ("role", sample.role), ("status", sample.status),
                                ("latency_ms", sample.latency_ms)):
                columns[name].append(value)
        predictions.extend(_predictions(sample.prediction, rows))
        if frame is not None and len(frame.columns):
            frames.append(frame)
    total = len(columns["request_id"])
    if frames:
        merged = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
        merged = merged.set_axis([str(c) for c in merged.columns], axis=1)
        table = pa.Table.from_pandas(merged, preserve_index=False).combine_chunks()
        features: pa.Array = pa.StructArray.from_arrays([col.chunk(0) if col.num_chunks else pa.array([], col.type)
                                                         for col in table.columns], names=table.column_names)
    else:
        features = pa.nulls(total, pa.struct([]))
    prediction_field = pa.field("prediction", pa.null())
    try:
        prediction = pa.array(predictions)
    except (pa.ArrowInvalid, pa.ArrowTypeError):  # rows of mixed types: keep them as JSON text
        prediction = pa.array([json.dumps(p, default=str) for p in predictions], pa.string())
        prediction_field = pa.field("prediction", pa.string(), metadata={JSON_ENCODING_KEY: b"json"})
    columns_out = {
        "request_id": pa.array(columns["request_id"], pa.string()), "row": pa.array(columns["row"], pa.int32()),
        "time": pa.array(columns["time"], pa.float64()), "model": pa.array(columns["model"], pa.string()),
        "version": pa.array(columns["version"], pa.int64()), "deployment": pa.array(columns["deployment"], pa.string()),
        "replica": pa.array(columns["replica"], pa.string()), "role": pa.array(columns["role"], pa.string()),
        "status": pa.array(columns["status"], pa.int32()), "latency_ms": pa.array(columns["latency_ms"], pa.float64()),
        "features": features,
    }
    schema = pa.schema([*(pa.field(name, array.type) for name, array in columns_out.items()),
                        prediction_field.with_type(prediction.type)])
    batch = pa.record_batch([*columns_out.values(), prediction], schema=schema)
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, batch.schema) as writer:
        writer.write_batch(batch)
    return sink.getvalue().to_pybytes()


def _len(value: Any) -> int:
    try:
        return len(value)
    except TypeError:
        return 1 if value is not None else 0


def decode_batch(data: bytes) -> Any:
    """The record batch of one inference message (a pyarrow Table)."""
    import pyarrow as pa

    return pa.ipc.open_stream(data).read_all()


def requests_of(table: Any) -> list[dict[str, Any]]:
    """A decoded message's rows grouped back into requests: features and prediction per row."""
    metadata = table.schema.field("prediction").metadata or {}
    as_json = metadata.get(JSON_ENCODING_KEY) == b"json"
    out: dict[str, dict[str, Any]] = {}
    for row in table.to_pylist():
        record = out.get(row["request_id"])
        if record is None:
            record = {key: row[key] for key in ("request_id", "time", "model", "version", "deployment", "replica",
                                                "role", "status", "latency_ms")}
            record["features"], record["prediction"] = [], []
            out[row["request_id"]] = record
        record["features"].append(row["features"])
        prediction = row["prediction"]
        record["prediction"].append(json.loads(prediction) if as_json and prediction is not None else prediction)
    return list(out.values())


async def stream_messages(nc: Any, subject: str, since_s: float) -> AsyncIterator[Any]:
    """Every message on ``subject`` stored in the last ``since_s`` seconds, oldest first, up to
    what the stream held when the read began (an ephemeral consumer, no acks, deleted after)."""
    from nats.js import api as js_api

    js = nc.jetstream()
    start = datetime.fromtimestamp(time.time() - since_s, tz=timezone.utc)
    config = js_api.ConsumerConfig(
        deliver_policy=js_api.DeliverPolicy.BY_START_TIME, ack_policy=js_api.AckPolicy.NONE,
        opt_start_time=start.isoformat(),  # type: ignore[arg-type]  # the server takes RFC 3339 text
        inactive_threshold=60.0, filter_subject=subject)
    psub = await js.pull_subscribe(subject, stream=INFERENCE_STREAM, config=config)
    try:
        left = min((await psub.consumer_info()).num_pending, MAX_SCAN_MESSAGES)
        while left > 0:
            try:
                msgs = await psub.fetch(min(SCAN_BATCH, left), timeout=5)
            except asyncio.TimeoutError:
                return  # pending messages that age out while we read are gone
            for msg in msgs:
                left -= 1
                yield msg
    finally:
        await psub.unsubscribe()


async def read_samples(nc: Any, project: str, deployment: str | None, since: float,
                       limit: int) -> list[dict[str, Any]]:
    """The newest ``limit`` sampled requests of the last ``since`` seconds, newest first (each
    with its features and prediction per row), ``label`` joined from feedback (None when none
    has arrived). The monitor service reads the log through this."""
    kept: deque[dict[str, Any]] = deque(maxlen=max(0, limit))
    async for msg in stream_messages(nc, inference_subject(project, deployment), since):
        try:
            kept.extend(requests_of(decode_batch(msg.data)))
        except Exception:  # noqa: BLE001 - a damaged message is skipped, never fails the read
            continue
    records = sorted(kept, key=lambda r: r["time"] if r["time"] is not None else -math.inf, reverse=True)
    if deployment is not None and records:
        labels = await read_labels(nc, project, deployment, since, {r["request_id"] for r in records})
        for record in records:
            record["label"] = labels.get(record["request_id"])
    else:
        for record in records:
            record["label"] = None
    return records


async def traffic(nc: Any, project: str, deployment: str, window_s: float = 60.0) -> dict[str, int]:
    """Sampled requests answered in the last ``window_s`` seconds (shadow copies left out: they
    are not traffic) and how many of them were errors (status >= 500)."""
    requests: dict[str, int] = {}
    async for msg in stream_messages(nc, inference_subject(project, deployment), window_s):
        try:
            table = decode_batch(msg.data).select(["request_id", "role", "status", "time"])
        except Exception:  # noqa: BLE001 - a damaged message is skipped, never fails the read
            continue
        floor = time.time() - window_s
        for row in table.to_pylist():
            if row["role"] != "shadow" and (row["time"] or 0) >= floor:
                requests[row["request_id"]] = int(row["status"] or 0)
    return {"requests": len(requests), "errors": sum(1 for status in requests.values() if status >= 500)}


async def read_labels(nc: Any, project: str, deployment: str, since: float,
                      wanted: Iterable[str] | None = None) -> dict[str, Any]:
    """Labels posted in the last ``since`` seconds by request id (the first label of a request
    wins, as the feedback route promises), only for ``wanted`` ids when given."""
    wanted_set = set(wanted) if wanted is not None else None
    labels: dict[str, Any] = {}
    async for msg in stream_messages(nc, feedback_subject(project, deployment), since):
        try:
            body = json.loads(msg.data)
            request_id = body["request_id"]
        except (ValueError, KeyError, TypeError):
            continue
        if request_id not in labels and (wanted_set is None or request_id in wanted_set):
            labels[request_id] = body.get("label")
    return labels
