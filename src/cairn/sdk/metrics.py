"""Metric logging for the SDK: points go into a bounded in-memory buffer and a background thread
sends them to the gateway in batches, so the training loop never waits on the network.

Policy when the buffer is full (the gateway is down for long): **drop the oldest points** and count
them in ``MetricsLogger.dropped`` (a warning is logged once). Memory stays bounded at
``max_buffered`` points (about 100 bytes each). Each batch gets its id once; a failed send is
retried with the same id, so a gateway or metrics-service restart counts nothing twice.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from numbers import Real
from typing import TYPE_CHECKING, Any

import httpx

from cairn.protocol import ARROW_STREAM, H_CAIRN_METRICS_SEQ, metric_batch_schema
from cairn.sdk.retry import MAX_WAIT_S, wait_for
from cairn.sdk.tls import tls_context

if TYPE_CHECKING:  # imported where used: `import cairn` and every process that starts a run stay light
    import numpy as np
    import pyarrow as pa  # ~0.2 s: the registry service imports the SDK's run diff, agents the client

log = logging.getLogger(__name__)

RETRY_STATUSES = {429, 502, 503, 504}


class MetricsLogger:
    """Buffers points for one run and ships them in batches from daemon threads: one sends whatever
    is there once its oldest point has waited ``interval_s`` (so a loop that logs every step makes
    one request a second, not one per step or per tenth of a second: each request costs the training
    process and the services CPU that the loop would otherwise have); the other ``senders - 1``
    send only full batches, so while one batch waits for its acknowledgement (a disk sync in the
    stream) the next is on its way. ``flush`` and ``close`` send at once."""

    def __init__(self, url: str, token: str | None, project: str, run_id: str, *, batch_size: int = 10_000,
                 interval_s: float = 1.0, max_buffered: int = 1_000_000, timeout: float = 30.0,
                 senders: int = 2, on_sequence: Callable[[int], None] | None = None) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(base_url=url, headers=headers, timeout=timeout, verify=tls_context())
        self._path = f"/api/v1/metrics/projects/{project}/runs/{run_id}/metrics"
        self.batch_size = batch_size
        self.interval_s = interval_s
        self._buffer: deque[tuple[str, float, int, float]] = deque(maxlen=max_buffered)
        self._waiting_since = 0.0  # monotonic time the oldest buffered point arrived
        self._steps: dict[str, int] = {}
        self._lock = threading.Condition()
        self._inflight = 0
        self._flushing = 0  # flush() calls waiting: send what is there at once
        self._closed = False
        self.dropped = 0
        self.sent_points = 0
        self.last_error: str | None = None
        self.on_sequence = on_sequence  # called with each accepted batch's metrics-stream sequence
        self._threads = [threading.Thread(target=self._run, args=(i == 0,), name=f"cairn-metrics-{run_id}-{i}",
                                          daemon=True) for i in range(max(1, senders))]
        for thread in self._threads:
            thread.start()

    def log(self, key: str, value: float, step: int | None = None, timestamp: float | None = None) -> None:
        """Queue one point; ``step`` defaults to the key's previous step + 1 (0 first)."""
        self.log_many({key: value}, step, timestamp)

    def log_many(self, values: Mapping[str, float], step: int | None = None, timestamp: float | None = None) -> None:
        """Queue one point per key, all at ``step`` (each key's next step when None) and one
        timestamp. Any real number is taken (NumPy scalars too); a non-number raises TypeError
        and queues nothing."""
        for key, value in values.items():
            if type(value) is not float and (isinstance(value, bool) or not isinstance(value, Real)):
                raise TypeError(f"metric {key!r}: value {value!r} is not a number")
        stamp = time.time() if timestamp is None else float(timestamp)
        buffer, steps = self._buffer, self._steps
        with self._lock:
            if not buffer:
                self._waiting_since = time.monotonic()
            for key, value in values.items():
                at = steps.get(key, -1) + 1 if step is None else int(step)
                if at > steps.get(key, at - 1):
                    steps[key] = at
                if len(buffer) == buffer.maxlen:
                    self.dropped += 1
                    if self.dropped == 1:
                        log.warning("metrics buffer full (%d points): dropping the oldest points; is the "
                                    "gateway reachable?", buffer.maxlen)
                buffer.append((key, float(value), at, stamp))
            if len(buffer) >= self.batch_size:
                self._lock.notify_all()

    def flush(self, timeout: float | None = 60.0) -> bool:
        """Wait until every queued point was accepted; False if ``timeout`` passed first.

        Returns as soon as the last batch is acknowledged: a pending flush makes the senders skip
        their linger (the wait that lets a second's points share one request), and the wait here
        ends on the acknowledgement's notification, not on a poll."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            self._flushing += 1
            try:
                self._lock.notify_all()
                while self._buffer or self._inflight:
                    left = None if deadline is None else deadline - time.monotonic()
                    if left is not None and left <= 0:
                        return False
                    self._lock.wait(left)
            finally:
                self._flushing -= 1
        return True

    def close(self, timeout: float | None = 60.0) -> None:
        """Flush, then stop the thread."""
        self.flush(timeout)
        with self._lock:
            self._closed = True
            self._lock.notify_all()
        for thread in self._threads:
            thread.join(timeout=5)
        self._http.close()

    def _take(self, primary: bool) -> list[tuple[str, float, int, float]] | None:
        with self._lock:
            if primary:
                while not self._buffer and not self._closed:
                    self._lock.wait(self.interval_s)
                if not self._buffer:
                    return None
                send_at = self._waiting_since + self.interval_s  # let the points of a second share a request
                while len(self._buffer) < self.batch_size and not self._closed and not self._flushing:
                    left = send_at - time.monotonic()
                    if left <= 0:
                        break
                    self._lock.wait(left)
                if not self._buffer:
                    return []  # another sender took them meanwhile
            else:
                while len(self._buffer) < self.batch_size and not self._closed:
                    self._lock.wait(self.interval_s)
                if len(self._buffer) < self.batch_size:
                    return None
            batch = [self._buffer.popleft() for _ in range(min(self.batch_size, len(self._buffer)))]
            self._inflight += len(batch)
            self._waiting_since = time.monotonic()  # what is left (or comes next) waits its own interval
            return batch

    def _run(self, primary: bool) -> None:
        while True:
            batch = self._take(primary)
            if batch is None:
                return
            if not batch:
                continue
            try:
                self._send(batch)
            finally:
                with self._lock:
                    self._inflight -= len(batch)
                    self._lock.notify_all()

    def _send(self, batch: list[tuple[str, float, int, float]]) -> None:
        """Send until accepted, with one batch id for every try; a batch too large for the server
        (413) is split in halves; give up only on another client error."""
        body = _encode(batch)
        batch_id = uuid.uuid4().hex
        delay = 0.1
        while True:
            resp = None
            try:
                resp = self._http.post(self._path, content=body, params={"batch_id": batch_id},
                                       headers={"Content-Type": ARROW_STREAM})
                if resp.status_code == 202:
                    with self._lock:
                        self.sent_points += len(batch)
                    written = resp.headers.get(H_CAIRN_METRICS_SEQ, "")
                    if self.on_sequence is not None and written.isdigit():
                        self.on_sequence(int(written))  # the run's client reads its own points (any replica)
                    return
                if resp.status_code == 413 and len(batch) > 1:  # too big for this server: nothing kept
                    half = len(batch) // 2
                    self._send(batch[:half])
                    self._send(batch[half:])
                    return
                if resp.status_code not in RETRY_STATUSES:
                    self.last_error = f"{resp.status_code}: {resp.text[:500]}"
                    log.error("metrics batch of %d points rejected: %s", len(batch), self.last_error)
                    return
                self.last_error = f"{resp.status_code} (retrying)"
            except httpx.TransportError as err:
                self.last_error = f"{type(err).__name__} (retrying)"
            wait = wait_for(resp, delay)
            time.sleep(MAX_WAIT_S if wait is None else wait)  # points are never given up on
            delay = min(delay * 2, 2.0)


def _encode(batch: list[tuple[str, float, int, float]]) -> bytes:
    """The batch as an Arrow IPC stream (LZ4). The columns are built from raw buffers: ``pa.array``
    and ``pa.table`` import pandas on their first call (~0.5 s, most of a short run's end)."""
    import numpy as np
    import pyarrow as pa

    schema = metric_batch_schema()
    keys, values, steps, stamps = zip(*batch)
    encoded = [key.encode() for key in keys]
    offsets = np.zeros(len(encoded) + 1, dtype=np.int32)
    np.cumsum([len(key) for key in encoded], out=offsets[1:])
    columns = [pa.Array.from_buffers(pa.string(), len(batch),
                                     [None, pa.py_buffer(offsets), pa.py_buffer(b"".join(encoded))]),
               *(pa.Array.from_buffers(kind, len(batch), [None, pa.py_buffer(np.array(column, dtype=dtype))])
                 for kind, column, dtype in ((pa.float64(), values, np.float64), (pa.int64(), steps, np.int64),
                                             (pa.float64(), stamps, np.float64)))]
    record = pa.RecordBatch.from_arrays(columns, schema=schema)
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, schema, options=pa.ipc.IpcWriteOptions(compression="lz4")) as writer:
        writer.write_batch(record)
    return sink.getvalue().to_pybytes()


class MetricsQueries:
    """Reading metrics back (mixed into ``Client``)."""

    request: Any
    _http: httpx.Client
    _answer: Any

    def metric_table(self, project: str, run_id: str, key: str, *, points: int | None = None,
                     method: str = "minmax", step_min: int | None = None, step_max: int | None = None) -> pa.Table:
        """One key's history as an Arrow table (step, value, timestamp; ``total`` and ``method`` in
        the schema metadata), fetched as Arrow IPC: the fast path for long series. ``step_min`` and
        ``step_max`` (inclusive) cut a range first; ``points`` then downsamples within it (a zoom)."""
        params: dict[str, Any] = {"key": key, "method": method}
        if points is not None:
            params["points"] = points
        if step_min is not None:
            params["step_min"] = step_min
        if step_max is not None:
            params["step_max"] = step_max
        path = f"/api/v1/metrics/projects/{project}/runs/{run_id}/metrics"
        for attempt in range(4):
            got: httpx.Response | None = None
            try:
                resp = got = self._http.get(path, params=params, headers={"Accept": ARROW_STREAM})
            except httpx.TransportError:
                if attempt == 3:
                    raise
            else:
                if resp.status_code not in RETRY_STATUSES or attempt == 3:
                    break
            wait = wait_for(got, 0.1 * 2 ** attempt)
            if wait is None:
                break
            time.sleep(wait)
        if resp.status_code != 200 or resp.headers.get("content-type", "").split(";")[0] != ARROW_STREAM:
            self._answer(resp)  # raises ApiError with the service's message
            raise ValueError(f"expected an Arrow stream, got {resp.headers.get('content-type')!r}")
        import pyarrow as pa

        return pa.ipc.open_stream(resp.content).read_all()

    def metric_history(self, project: str, run_id: str, key: str, *, points: int | None = None,
                       method: str = "minmax", step_min: int | None = None,
                       step_max: int | None = None, as_lists: bool = False) -> "MetricHistory | dict[str, Any]":
        """One key's history; ``points`` downsamples (``method`` minmax or lttb), within
        ``step_min``..``step_max`` when given (``total`` counts that range). Values are floats
        (NaN and infinities included). A :class:`MetricHistory` of NumPy arrays, taken from the
        Arrow answer without a copy; ``as_lists=True`` gives the plain dict of lists instead."""
        table = self.metric_table(project, run_id, key, points=points, method=method, step_min=step_min,
                                  step_max=step_max)
        history = MetricHistory.from_table(run_id, key, table)
        return history.to_dict() if as_lists else history

    def metric_summary(self, project: str, run_id: str) -> dict[str, dict[str, Any]]:
        """Per key: count, last, last_step, min, max."""
        body = self.request("GET", f"/api/v1/metrics/projects/{project}/runs/{run_id}/metrics/summary")
        return {s["key"]: s for s in body["summaries"]}

    def compare_metric(self, project: str, key: str, run_ids: list[str], *, points: int = 1000,
                       method: str = "minmax", aggregate: bool = True) -> dict[str, Any]:
        """The same key for many runs (downsampled) and a cross-run aggregate by step."""
        return self.request("POST", f"/api/v1/metrics/projects/{project}/metrics/search",
                            json={"key": key, "run_ids": run_ids, "points": points, "method": method,
                                  "aggregate": aggregate})


class MetricHistory:
    """One key's history as NumPy arrays (``steps`` int64, ``values`` and ``timestamps`` float64),
    read-only views of the Arrow answer: a million points cost no Python objects. Reads like the
    old dict too (``h["values"]``, ``h["total"]``, ``dict(h)``); :meth:`to_dict` gives lists. Not a
    ``Mapping`` subclass: its ``values`` attribute is the array, not ``Mapping.values()``."""

    __slots__ = ("run_id", "key", "total", "method", "steps", "values", "timestamps")

    def __init__(self, run_id: str, key: str, total: int, method: str, steps: np.ndarray, values: np.ndarray,
                 timestamps: np.ndarray) -> None:
        self.run_id, self.key, self.total, self.method = run_id, key, total, method
        self.steps, self.values, self.timestamps = steps, values, timestamps

    @classmethod
    def from_table(cls, run_id: str, key: str, table: pa.Table) -> "MetricHistory":
        meta = {k.decode(): v.decode() for k, v in (table.schema.metadata or {}).items()}
        columns = [_numpy(table.column(name)) for name in ("step", "value", "timestamp")]
        return cls(run_id, key, int(meta.get("total", table.num_rows)), meta.get("method", "full"), *columns)

    def __getitem__(self, name: str) -> Any:
        if name not in self.__slots__:
            raise KeyError(name)
        return getattr(self, name)

    def __iter__(self) -> Iterator[str]:
        return iter(self.__slots__)

    def keys(self) -> tuple[str, ...]:
        return self.__slots__

    def __contains__(self, name: object) -> bool:
        return name in self.__slots__

    def __len__(self) -> int:
        return len(self.__slots__)

    def __repr__(self) -> str:
        return f"MetricHistory(run_id={self.run_id!r}, key={self.key!r}, points={len(self.steps)}, total={self.total})"

    def to_dict(self) -> dict[str, Any]:
        """The history as plain Python (lists of ints and floats), e.g. for JSON."""
        return {"run_id": self.run_id, "key": self.key, "total": self.total, "method": self.method,
                "steps": self.steps.tolist(), "values": self.values.tolist(), "timestamps": self.timestamps.tolist()}


def _numpy(column: pa.ChunkedArray) -> np.ndarray:
    """A column as a NumPy array: a read-only view of the Arrow buffer when it is one chunk without
    nulls (the usual answer), one copy otherwise. Read through ``np.frombuffer`` because
    ``Array.to_numpy`` imports pandas on its first call (~0.5 s of a fresh process's first read)."""
    import numpy as np
    import pyarrow as pa

    array = column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)
    kind = array.type
    if array.null_count or not (pa.types.is_integer(kind) or pa.types.is_floating(kind)):
        return array.to_numpy(zero_copy_only=False)  # nulls, dates, ...: pyarrow's own conversion
    dtype = np.dtype(kind.to_pandas_dtype())
    return np.frombuffer(array.buffers()[1], dtype=dtype, count=len(array), offset=array.offset * dtype.itemsize)
