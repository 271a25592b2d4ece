"""The inference log: a serving replica's sampled requests on the ``CAIRN_INFERENCE`` stream.

:class:`NatsInferenceSink` is the :class:`~cairn.serving.sink.InferenceSink` that publishes.
``offer`` is a plain function that only samples and appends to a bounded buffer, so the answer to
a request never waits on NATS: when the buffer is full (NATS slow or gone), the sample is dropped
and counted. A background task flushes every ``flush_interval_ms`` or ``flush_samples`` samples,
one Arrow IPC record batch per message (see :mod:`cairn.serving.inference_records`), each with a
``Nats-Msg-Id`` made once per batch: a publish retried after a lost acknowledgement (a server
restart, a broken connection) is stored once. A process with NATS credentials publishes directly;
a serving replica (a job: it holds a Cairn token, never NATS credentials) hands each batch to
:class:`HttpRelay`, which posts it to the deployments service, which publishes it with the same
message id. The deployments service reads the stream back.
"""

from __future__ import annotations

import asyncio
import logging
import random
import threading
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
from pydantic import Field

from cairn.kernel.settings import CommonSettings
from cairn.kernel.tasks import stop_tasks
from cairn.protocol import (
    ARROW_STREAM,
    H_MSG_ID,
    create_stream,
    inference_stream_config,
    inference_subject,
)
from cairn.serving.inference_records import encode_samples, read_labels, read_samples
from cairn.serving.sink import InferenceSample

__all__ = ["HttpRelay", "InferenceLogSettings", "NatsInferenceSink", "Publisher", "ensure_inference_stream", "read_labels", "read_samples"]

log = logging.getLogger(__name__)


class InferenceLogSettings(CommonSettings):
    """The stream's retention (``CAIRN_INFERENCE_MAX_AGE_S``, ``CAIRN_INFERENCE_MAX_BYTES``):
    oldest samples go first once either limit is reached."""

    inference_max_age_s: float = Field(default=7 * 86400.0, gt=0)
    inference_max_bytes: int = Field(default=10 * (1 << 30), gt=0)


async def ensure_inference_stream(nc: Any, settings: InferenceLogSettings | None = None) -> None:
    """Create the inference stream, or bring an existing one to the configured retention."""
    settings = settings or InferenceLogSettings()
    config = inference_stream_config(settings.replicas, settings.inference_max_age_s, settings.inference_max_bytes)
    await create_stream(nc, config)
    await create_stream(nc, config, "UPDATE")


# stores one encoded batch under its message id, or raises (the sink retries with the same id)
Publisher = Callable[[bytes, str], Awaitable[None]]


class HttpRelay:
    """A :data:`Publisher` for serving replicas: jobs hold a Cairn token, not NATS credentials,
    so a replica posts each batch to its deployment's ``.../samples`` route through the gateway,
    and the deployments service publishes it with the same message id (stored once)."""

    def __init__(self, gateway_url: str, token: str | None, project: str, deployment: str,
                 timeout_s: float = 10.0) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.http = httpx.AsyncClient(base_url=gateway_url.rstrip("/"), headers=headers, timeout=timeout_s)
        self.path = f"/api/v1/deployments/projects/{project}/deployments/{deployment}/samples"

    async def __call__(self, data: bytes, msg_id: str) -> None:
        resp = await self.http.post(self.path, content=data, headers={
            "Content-Type": ARROW_STREAM, "X-Cairn-Batch-Id": msg_id})
        if resp.status_code >= 300:
            raise RuntimeError(f"the deployments service answered {resp.status_code}: {resp.text[:200]}")

    async def close(self) -> None:
        await self.http.aclose()


class NatsInferenceSink:
    """Samples requests at ``sample_rate`` (0..1) and publishes them in batches; never blocks or
    raises in :meth:`offer`. Start it (:meth:`start`) on the event loop that will publish."""

    def __init__(self, nc: Any, project: str, deployment: str | None = None, *, replica: str | None = None,
                 sample_rate: float = 1.0, max_buffer: int = 10_000, flush_interval_ms: float = 200.0,
                 flush_samples: int = 500, publish_timeout_s: float = 5.0,
                 rng: random.Random | None = None, publisher: Publisher | None = None,
                 max_message_bytes: int | None = None) -> None:
        if not 0.0 <= sample_rate <= 1.0:
            raise ValueError(f"sample_rate must be between 0 and 1, not {sample_rate}")
        if max_buffer < 1 or flush_samples < 1 or flush_interval_ms <= 0:
            raise ValueError("max_buffer and flush_samples must be at least 1, flush_interval_ms above 0")
        self.nc = nc
        self.publisher = publisher  # None: publish to JetStream on ``nc`` directly
        self.max_message_bytes = max_message_bytes or int(getattr(nc, "max_payload", 0) or 1 << 20)
        self.subject = inference_subject(project, deployment)
        self.replica = replica
        self.sample_rate = sample_rate
        self.max_buffer = max_buffer
        self.flush_interval_s = flush_interval_ms / 1000.0
        self.flush_samples = flush_samples
        self.publish_timeout_s = publish_timeout_s
        self._rng = rng or random.Random()
        self._buffer: list[InferenceSample] = []
        self._lock = threading.Lock()  # offer may come from a worker thread (a model call off the loop)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._failing = False
        self._sink_id = uuid.uuid4().hex[:16]
        self._batches = 0
        self._counts = {"offered": 0, "sampled": 0, "published": 0, "dropped": 0, "messages": 0,
                        "publish_errors": 0, "unencodable": 0}

    # --- the request path -------------------------------------------------------------------------
    def offer(self, sample: InferenceSample) -> None:
        """Sample and buffer ``sample``; drops (and counts) it when the buffer is full. Never
        awaits anything and never raises: the request's answer does not depend on the log."""
        try:
            with self._lock:
                self._counts["offered"] += 1
                if self.sample_rate < 1.0 and self._rng.random() >= self.sample_rate:
                    return
                self._counts["sampled"] += 1
                if self._closing or len(self._buffer) >= self.max_buffer:
                    self._counts["dropped"] += 1
                    return
                self._buffer.append(sample)
                full = len(self._buffer) >= self.flush_samples
            if full:
                self._nudge()
        except Exception:  # noqa: BLE001 - logging must never fail a request
            log.exception("inference sink: offer failed")

    def _nudge(self) -> None:
        loop, wake = self._loop, self._wake
        if loop is None or wake is None or loop.is_closed():
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            wake.set()
        else:
            loop.call_soon_threadsafe(wake.set)

    def stats(self) -> dict[str, int]:
        """Counters for the runtime's /metrics: offered, sampled, published, dropped (samples),
        messages, publish_errors (retried), unencodable (samples lost: features Arrow cannot hold,
        or larger than a message may be), buffered."""
        with self._lock:
            return {**self._counts, "buffered": len(self._buffer)}

    # --- the background flusher -------------------------------------------------------------------
    async def start(self) -> None:
        """Start the flusher on the running loop."""
        if self._task is not None:
            return
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        self._task = asyncio.create_task(self._run(), name="inference-log-flusher")

    async def close(self, timeout_s: float = 5.0) -> None:
        """Stop sampling, publish what is buffered (for at most ``timeout_s``), stop the flusher;
        what could not be published by then is counted as dropped."""
        with self._lock:
            self._closing = True
        if self._task is None:
            return
        assert self._wake is not None
        self._wake.set()
        try:
            await asyncio.wait_for(asyncio.shield(self._task), timeout_s)
        except (asyncio.TimeoutError, asyncio.CancelledError):
            await stop_tasks(self._task)
        with self._lock:
            self._counts["dropped"] += len(self._buffer)
            self._buffer.clear()

    async def _run(self) -> None:
        assert self._wake is not None
        while True:
            try:
                await asyncio.wait_for(self._wake.wait(), self.flush_interval_s)
            except asyncio.TimeoutError:
                pass
            self._wake.clear()
            await self.flush()
            if self._closing:
                with self._lock:
                    if not self._buffer:
                        return

    async def flush(self) -> None:
        """Publish everything buffered now, ``flush_samples`` at a time."""
        while True:
            with self._lock:
                taken, self._buffer = self._buffer[:self.flush_samples], self._buffer[self.flush_samples:]
            if not taken:
                return
            # encoding is CPU work: off the event loop, so requests are answered meanwhile
            for data, count in await asyncio.to_thread(self._messages, taken):
                self._batches += 1
                await self._publish(data, count, f"inf.{self._sink_id}.{self._batches}")

    def _messages(self, samples: list[InferenceSample]) -> list[tuple[bytes, int]]:
        """Encoded messages within the server's payload limit: a batch too large is split in
        halves; a single sample too large, or one Arrow cannot hold, is lost and counted."""
        try:
            encoded = encode_samples(samples)
        except Exception:  # noqa: BLE001 - features Arrow cannot hold: lose these samples, not the loop
            if len(samples) > 1:
                half = len(samples) // 2
                return self._messages(samples[:half]) + self._messages(samples[half:])
            log.exception("inference sink: cannot encode a sample of request %s", samples[0].request_id)
            with self._lock:
                self._counts["unencodable"] += 1
            return []
        limit = self.max_message_bytes - 1024  # headers travel too
        out: list[tuple[bytes, int]] = []
        for data, group in encoded:
            if len(data) <= limit:
                out.append((data, len(group)))
            elif len(group) > 1:
                half = len(group) // 2
                out += self._messages(group[:half]) + self._messages(group[half:])
            else:
                with self._lock:
                    self._counts["unencodable"] += 1
        return out

    async def _publish(self, data: bytes, count: int, msg_id: str) -> None:
        """Publish one batch until the stream acknowledges it, always with the same message id
        (so a retry after a lost acknowledgement is stored once). Gives up only when closing."""
        delay = 0.05
        while True:
            try:
                if self.publisher is not None:
                    await self.publisher(data, msg_id)
                else:
                    await self.nc.jetstream().publish(self.subject, data, timeout=self.publish_timeout_s,
                                                      headers={H_MSG_ID: msg_id})
            except asyncio.CancelledError:
                with self._lock:
                    self._counts["dropped"] += count
                raise
            except Exception as err:  # noqa: BLE001 - NATS down, no stream yet, a timeout: retry
                with self._lock:
                    self._counts["publish_errors"] += 1
                if not self._failing:  # once per outage, not once per retry
                    log.warning("inference sink: publish to %s failed (%r); retrying until it is stored",
                                self.subject, err)
                self._failing = True
                await asyncio.sleep(delay)
                delay = min(delay * 2, 1.0)
                continue
            with self._lock:
                self._counts["published"] += count
                self._counts["messages"] += 1
            if self._failing:
                log.info("inference sink: publishing to %s again", self.subject)
                self._failing = False
            return
