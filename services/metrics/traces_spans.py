"""Spans in Parquet: one part file per accepted batch of a trace, written durably (temp file,
fsync, rename, fsync folder) before ingest answers, read back whole for a trace.

Spans are telemetry, like metric points: they are not events of record. A span is kept in
MLflow's span form (``trace_id``/``span_id`` base64, ``attributes`` JSON-encoded strings, as
MLflow's own server stores them) in the ``span`` column, with the columns a search reads
(``span_id``, ``parent_span_id``, ``name``, times, status) beside it. The same span sent twice
(an exporter's retry) counts once: reads keep the last copy of each span id."""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from cairn.kernel.durable import fsync_dir
from cairn.kernel.errors import InvalidInput

SPAN_SCHEMA = pa.schema([
    ("span_id", pa.string()), ("parent_span_id", pa.string()), ("name", pa.string()),
    ("start_ns", pa.int64()), ("end_ns", pa.int64()), ("status_code", pa.string()), ("span", pa.string()),
])
MAX_SPANS_PER_BATCH = 10_000



class SpanFiles:
    """``<root>/<project>/<trace id>/part-<uuid>.parquet``; the trace id was checked by the caller."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def folder(self, project: str, trace_id: str) -> Path:
        return self.root / project / trace_id

    def write(self, project: str, trace_id: str, spans: list[dict[str, Any]]) -> int:
        """Write one batch durably; returns the number of spans. Each span needs a ``span_id``
        and a ``name``; times are integers (nanoseconds)."""
        if not spans:
            return 0
        if len(spans) > MAX_SPANS_PER_BATCH:
            raise InvalidInput(f"{len(spans)} spans in one batch; send at most {MAX_SPANS_PER_BATCH}")
        columns: dict[str, list[Any]] = {name: [] for name in SPAN_SCHEMA.names}
        for i, span in enumerate(spans):
            if not isinstance(span, dict) or not isinstance(span.get("span_id"), str) or not span["span_id"]:
                raise InvalidInput(f"span {i} has no span_id", details={"index": i})
            if not isinstance(span.get("name"), str):
                raise InvalidInput(f"span {i} has no name", details={"index": i})
            try:
                start, end = int(span.get("start_time_unix_nano") or 0), int(span.get("end_time_unix_nano") or 0)
            except (TypeError, ValueError):
                raise InvalidInput(f"span {i}: start and end times must be integers (nanoseconds)",
                                   details={"index": i}) from None
            columns["span_id"].append(span["span_id"])
            columns["parent_span_id"].append(span.get("parent_span_id"))
            columns["name"].append(span["name"])
            columns["start_ns"].append(start)
            columns["end_ns"].append(end)
            columns["status_code"].append(str((span.get("status") or {}).get("code", "STATUS_CODE_UNSET")))
            columns["span"].append(json.dumps(span, separators=(",", ":"), ensure_ascii=False))
        table = pa.table(columns, schema=SPAN_SCHEMA)
        folder = self.folder(project, trace_id)
        folder.mkdir(parents=True, exist_ok=True)
        name = f"part-{uuid.uuid4().hex}.parquet"
        tmp = folder / f".{name}.tmp"
        with open(tmp, "wb") as handle:
            pq.write_table(table, handle, compression="zstd")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, folder / name)
        fsync_dir(folder)
        return table.num_rows

    def read(self, project: str, trace_id: str) -> list[dict[str, Any]]:
        """Every span of the trace in MLflow's span form, by start time; a span id seen twice
        keeps its newest copy (parts are read oldest first)."""
        folder = self.folder(project, trace_id)
        if not folder.is_dir():
            return []
        parts = sorted(folder.glob("part-*.parquet"), key=lambda p: p.stat().st_mtime_ns)
        spans: dict[str, dict[str, Any]] = {}
        for part in parts:
            for raw in pq.read_table(part, columns=["span_id", "span"]).to_pylist():
                spans[raw["span_id"]] = json.loads(raw["span"])
        return sorted(spans.values(), key=lambda s: int(s.get("start_time_unix_nano") or 0))


def root_span(spans: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The span without a parent (MLflow's root), if it arrived."""
    return next((s for s in spans if not s.get("parent_span_id")), None)


def info_from_spans(trace_id: str, experiment_id: str, spans: list[dict[str, Any]]) -> dict[str, Any]:
    """The trace info that a batch of spans tells (what MLflow's server records when spans arrive
    before the trace's info): its experiment; from the root span, the start, duration, state,
    name and request/response previews."""
    info: dict[str, Any] = {"trace_id": trace_id, "experiment_id": experiment_id,
                            "tags": {"mlflow.trace.spansLocation": "TRACKING_STORE"}}
    root = root_span(spans)
    if root is None:
        starts = [int(s.get("start_time_unix_nano") or 0) for s in spans]
        info["request_time_ms"] = min(starts) // 1_000_000 if starts else 0
        return info
    start, end = int(root.get("start_time_unix_nano") or 0), int(root.get("end_time_unix_nano") or 0)
    info["request_time_ms"] = start // 1_000_000
    if end:
        info["execution_ms"] = max(0, (end - start) // 1_000_000)
        code = (root.get("status") or {}).get("code")
        info["state"] = "ERROR" if code == "STATUS_CODE_ERROR" else "OK"
    info["tags"]["mlflow.traceName"] = root["name"][:250]
    attributes = root.get("attributes") or {}
    for attribute, field in (("mlflow.spanInputs", "request_preview"), ("mlflow.spanOutputs", "response_preview")):
        if isinstance(attributes.get(attribute), str):
            info[field] = attributes[attribute][:1000]
    return info
