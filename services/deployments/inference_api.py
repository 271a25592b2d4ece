"""The inference log over HTTP: ground-truth labels in, sampled requests out.

``POST .../feedback`` takes labels as JSON (``{"labels": [{"request_id", "label"}]}``) or as a
Parquet file (columns ``request_id`` and ``label``) and publishes one message per label on
``cairn.feedback.<project>.<deployment>``, with the message id ``fb.<project>.<deployment>.<request
id>``: a label posted twice (a retried upload, a second file holding the same ids) is stored once,
and the reader keeps the first label of a request as well, past the stream's idempotency window.
``GET .../requests`` reads sampled requests back by time, newest first, labels joined.
The deployments service includes this router; it reads the stream with its own NATS user.
"""

from __future__ import annotations

import asyncio
import io
import math
import re
import time
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, FastAPI, Header, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field, StringConstraints, TypeAdapter, ValidationError

from cairn.kernel.errors import InvalidInput, PayloadTooLarge, Unavailable
from cairn.kernel.identity import EDITOR, VIEWER, caller_of, requires
from cairn.kernel.ids import PROJECT_NAME_PATTERN
from cairn.kernel.service import ServiceRuntime
from cairn.protocol import ARROW_STREAM, H_MSG_ID, feedback_subject, inference_subject
from cairn.serving.inference_log import InferenceLogSettings, ensure_inference_stream, read_samples
from cairn.serving.inference_records import decode_batch

router = APIRouter(prefix="/projects/{project}/deployments/{name}", tags=["inference log"])

MAX_LABELS = 100_000  # per request; a larger set goes in several posts
MAX_REQUESTS = 1000  # a page of sampled requests
PUBLISH_WINDOW = 256  # labels awaiting their acknowledgement at once
PARQUET_TYPES = ("application/vnd.apache.parquet", "application/x-parquet", "application/octet-stream")
_DURATION = re.compile(r"\A\s*(\d+(?:\.\d+)?)\s*(s|m|h|d)?\s*\Z")
_UNIT_S = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}

ProjectName = Annotated[str, Path(pattern=PROJECT_NAME_PATTERN, description="project name")]
DeploymentName = Annotated[str, Path(pattern=PROJECT_NAME_PATTERN, description="deployment name")]
RequestId = Annotated[str, StringConstraints(min_length=1, max_length=200)]
Label = Annotated[str, StringConstraints(max_length=1000)] | bool | int | float


class LabelIn(BaseModel):
    request_id: RequestId
    label: Label


class FeedbackBody(BaseModel):
    labels: list[LabelIn] = Field(min_length=1, max_length=MAX_LABELS)


class FeedbackResult(BaseModel):
    accepted: int = Field(description="labels stored now")
    duplicates: int = Field(description="labels of request ids that already had one (stored before, or twice here)")


_BODY = TypeAdapter(FeedbackBody)
SAMPLE_COLUMNS = ("request_id", "time", "version", "status", "latency_ms")  # what a sample batch must hold


async def start_inference_log(app: FastAPI, runtime: ServiceRuntime) -> None:
    """An ``on_start`` hook: the inference stream exists (with the configured retention) before
    the first replica publishes to it."""
    await ensure_inference_stream(runtime.log.nc, _settings(app))
    app.state.inference_stream_ready = True


def _settings(app: FastAPI) -> InferenceLogSettings:
    settings = getattr(app.state, "inference_settings", None)
    if settings is None:
        settings = app.state.inference_settings = InferenceLogSettings()
    return settings


async def _nc(request: Request) -> Any:
    """The service's NATS connection, the stream made first if no start hook made it."""
    runtime: ServiceRuntime = request.app.state.runtime
    if not getattr(request.app.state, "inference_stream_ready", False):
        await start_inference_log(request.app, runtime)
    return runtime.log.nc


def parse_since(text: str, max_s: float) -> float:
    """``"90s"``, ``"15m"``, ``"1h"``, ``"7d"`` or a number of seconds -> seconds (up to ``max_s``)."""
    match = _DURATION.match(text)
    if not match:
        raise InvalidInput(f"since {text[:40]!r} is not a duration: use e.g. 30s, 15m, 1h or 7d",
                           details={"field": "since"})
    seconds = float(match.group(1)) * _UNIT_S[match.group(2) or "s"]
    if not 0 < seconds <= max_s:
        raise InvalidInput(f"since must be above 0 and at most the log's retention ({max_s / 86400:g} days)",
                           details={"field": "since"})
    return seconds


def _labels_from_parquet(data: bytes) -> list[LabelIn]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(io.BytesIO(data))
    except (pa.ArrowException, OSError) as err:
        raise InvalidInput(f"the body is not a Parquet file ({err}); send JSON {{\"labels\": [...]}} or "
                           "a Parquet file with columns request_id and label") from None
    missing = [c for c in ("request_id", "label") if c not in table.column_names]
    if missing:
        raise InvalidInput(f"the Parquet file has no column {missing[0]!r}; it needs request_id and label "
                           f"(it has {', '.join(table.column_names[:10]) or 'none'})", details={"field": missing[0]})
    rows = table.select(["request_id", "label"]).to_pylist()
    try:
        return FeedbackBody.model_validate({"labels": rows}).labels
    except ValidationError as err:
        raise RequestValidationError(err.errors()) from None


async def _labels(request: Request) -> list[LabelIn]:
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    body = await request.body()
    if media in PARQUET_TYPES:
        return _labels_from_parquet(body)
    if media not in ("application/json", ""):
        raise InvalidInput(f"content type {media!r} is not taken: send application/json or "
                           f"{PARQUET_TYPES[0]}", details={"field": "content-type"})
    try:
        return _BODY.validate_json(body).labels
    except ValidationError as err:
        raise RequestValidationError(err.errors()) from None


@router.post("/feedback", **requires(EDITOR))
async def post_feedback(project: ProjectName, name: DeploymentName, request: Request) -> FeedbackResult:
    """Ground-truth labels of sampled requests, joined by request id; the first label of a
    request id counts, a repeated one is reported as a duplicate and changes nothing."""
    labels = await _labels(request)  # everything is checked before anything is published
    caller = caller_of(request)
    nc = await _nc(request)
    js = nc.jetstream()
    subject = feedback_subject(project, name)
    seen: set[str] = set()
    unique = []
    for item in labels:
        if item.request_id not in seen:
            seen.add(item.request_id)
            unique.append(item)
    duplicates = len(labels) - len(unique)
    wall = time.time()
    accepted = 0
    for start in range(0, len(unique), PUBLISH_WINDOW):
        window = unique[start:start + PUBLISH_WINDOW]
        acks = await asyncio.gather(*(
            js.publish(subject, orjson.dumps({"request_id": item.request_id, "label": item.label, "time": wall,
                                              "actor": caller.actor}),
                       headers={H_MSG_ID: f"fb.{project}.{name}.{item.request_id}"}, timeout=10)
            for item in window), return_exceptions=True)
        failed = next((ack for ack in acks if isinstance(ack, BaseException)), None)
        if failed is not None:
            raise Unavailable(f"the inference log did not take the labels ({failed.__class__.__name__}); "
                              "post them again: labels already stored count once")
        accepted += sum(1 for ack in acks if not getattr(ack, "duplicate", False))
        duplicates += sum(1 for ack in acks if getattr(ack, "duplicate", False))
    return FeedbackResult(accepted=accepted, duplicates=duplicates)


@router.post("/samples", status_code=202, **requires(EDITOR))
async def post_samples(project: ProjectName, name: DeploymentName, request: Request,
                       batch_id: Annotated[str, Header(alias="X-Cairn-Batch-Id", pattern=r"^[A-Za-z0-9_.:-]{1,128}$")]
                       ) -> dict[str, Any]:
    """A replica's batch of sampled requests (Arrow IPC, as the sink encodes it): published to the
    deployment's inference subject with the batch id as message id, so a batch posted again after
    a lost answer is stored once. Replicas are jobs: they hold a Cairn token, not NATS credentials."""
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media != ARROW_STREAM:
        raise InvalidInput(f"send the batch as {ARROW_STREAM} (it was {media or 'no content type'!r})",
                           details={"field": "content-type"})
    data = await request.body()
    nc = await _nc(request)
    limit = int(nc.max_payload) - 1024
    if len(data) > limit:
        raise PayloadTooLarge(f"the batch is {len(data)} bytes; the inference log takes at most {limit} "
                              "per message: flush fewer samples at a time", details={"limit": limit})
    try:
        table = decode_batch(data)
    except Exception as err:  # noqa: BLE001 - anything unreadable is the sender's mistake
        raise InvalidInput(f"the body is not an Arrow stream ({type(err).__name__}: {err})") from None
    missing = [c for c in SAMPLE_COLUMNS if c not in table.column_names]
    if missing:
        raise InvalidInput(f"the batch has no column {missing[0]!r}: send what the serving runtime's "
                           "inference sink encodes", details={"field": missing[0]})
    rows = table.num_rows
    try:
        ack = await nc.jetstream().publish(inference_subject(project, name), data, timeout=10,
                                           headers={H_MSG_ID: f"relay.{project}.{name}.{batch_id}"})
    except Exception as err:  # noqa: BLE001 - not stored: the replica posts it again with the same id
        raise Unavailable(f"the inference log did not take the batch ({type(err).__name__}); post it again "
                          "with the same X-Cairn-Batch-Id", details={"retry_after": 1}) from None
    return {"samples": rows, "duplicate": bool(ack.duplicate)}


@router.get("/requests", **requires(VIEWER))
async def list_requests(project: ProjectName, name: DeploymentName, request: Request, since: str = "1h",
                        limit: Annotated[int, Query(ge=1, le=MAX_REQUESTS)] = 100) -> dict[str, Any]:
    """Sampled requests of the last ``since`` (30s, 15m, 1h, 7d), newest first: features and
    prediction per input row, status, latency, model version, and the label when one arrived."""
    seconds = parse_since(since, _settings(request.app).inference_max_age_s)
    nc = await _nc(request)
    records = await read_samples(nc, project, name, seconds, limit)
    return {"requests": _finite(records), "count": len(records)}


def _finite(value: Any) -> Any:
    """NaN and infinities (missing feature values) as null: JSON has no such numbers."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value
