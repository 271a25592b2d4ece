"""A bounded client load through the gateways that records every acknowledged write.

Each round creates a run, logs params, sends a metrics batch, uploads a blob and (every third
round) submits a job. A request goes to one gateway; when it gets no answer or a 502/503/504 it
goes to the next gateway with the same ``Idempotency-Key`` (the same batch id, the same digest),
as a client behind a load balancer would see it, until a deadline. So a write may be sent several
times but is recorded once, when acknowledged, and the checks may ask for it exactly once.

The time during which writes failed is measured from the requests themselves: each request that
needed more than one try contributes the span from its first failed try to its answer, and the
window is the union of those spans (reported, never asserted)."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx

from cairn.core.fingerprint import blake3
from cairn.protocol import H_CAIRN_MIN_SEQ, H_CAIRN_SEQ
from cairn.sdk.tls import tls_context

RETRY_STATUSES = (502, 503, 504)
REQUEST_DEADLINE_S = 90.0
TIMEOUT = httpx.Timeout(20.0, connect=1.0)
JOB_QUEUE = "lab"


@dataclass
class Acked:
    runs: list[str] = field(default_factory=list)
    params: dict[str, dict[str, str]] = field(default_factory=dict)  # run -> params
    points: dict[str, int] = field(default_factory=dict)  # run -> acknowledged points of key "loss"
    metrics_seq: int = 0  # the highest metrics-stream sequence an acknowledged batch was given
    blobs: list[str] = field(default_factory=list)
    jobs: list[str] = field(default_factory=list)


class Load:
    """Writers in threads (``running``), or one call at a time (``call``)."""

    def __init__(self, gateways: list[str], token: str, project: str, writers: int = 2) -> None:
        self.gateways = gateways
        self.token = token
        self.project = project
        self.writers = writers
        self.acked = Acked()
        self.spans: list[tuple[float, float]] = []
        self.retried = 0
        self.errors: list[str] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._rounds = 0
        self._calls = 0
        self.last_seq = 0  # the highest Cairn-Seq answered: sent as Cairn-Min-Seq

    def call(self, method: str, path: str, *, start: int | None = None, key: str | None = None,
             **kwargs: Any) -> dict[str, Any]:
        """One write (or read) through any gateway, retried on the next until answered."""
        headers = {"Authorization": f"Bearer {self.token}", "Idempotency-Key": key or uuid.uuid4().hex}
        if self.last_seq:  # read-your-writes across gateways, as the SDK does (docs/cluster.md)
            headers[H_CAIRN_MIN_SEQ] = str(self.last_seq)
        first_failure: float | None = None
        deadline = time.monotonic() + REQUEST_DEADLINE_S
        with self._lock:  # spread over the gateways, as a balancer would
            self._calls += 1
            attempt = self._calls if start is None else start
        with httpx.Client(timeout=TIMEOUT, verify=tls_context()) as http:
            while True:
                gateway = self.gateways[attempt % len(self.gateways)]
                attempt += 1
                try:
                    answer = http.request(method, f"{gateway}/api/v1{path}", headers=headers, **kwargs)
                    if answer.status_code not in RETRY_STATUSES:
                        break
                    why = f"{answer.status_code} {answer.text[:200]}"
                except httpx.TransportError as err:
                    why = f"{type(err).__name__}: {err}"
                now = time.monotonic()
                first_failure = first_failure or now
                with self._lock:
                    self.retried += 1
                if now > deadline:
                    raise TimeoutError(f"{method} {path} not answered within {REQUEST_DEADLINE_S:.0f}s: {why}")
                time.sleep(0.1)
        if first_failure is not None:
            with self._lock:
                self.spans.append((first_failure, time.monotonic()))
        if H_CAIRN_SEQ in answer.headers:
            with self._lock:
                self.last_seq = max(self.last_seq, int(answer.headers[H_CAIRN_SEQ]))
        if answer.status_code >= 400:
            raise AssertionError(f"{method} {path}: {answer.status_code} {answer.text[:500]}")
        return dict(answer.json()) if answer.content else {}

    def round(self, number: int, writer: int) -> None:
        """One round of writes; each acknowledged write recorded."""
        p = self.project
        run = self.call("POST", f"/registry/projects/{p}/runs", json={"name": f"w{writer}-{number}"})
        run_id = run["id"]
        with self._lock:
            self.acked.runs.append(run_id)
        params = {"lr": str(number), "writer": str(writer)}
        self.call("POST", f"/registry/projects/{p}/runs/{run_id}/params", json={"params": params})
        with self._lock:
            self.acked.params[run_id] = params
        points = [{"key": "loss", "value": 1.0 / (step + 1), "step": step} for step in range(5)]
        batch = self.call("POST", f"/metrics/projects/{p}/runs/{run_id}/metrics",
                          json={"batch_id": uuid.uuid4().hex, "points": points})
        with self._lock:
            self.acked.points[run_id] = len(points)
            self.acked.metrics_seq = max(self.acked.metrics_seq, int(batch["sequence"]))
        body = f"{p} {run_id} {uuid.uuid4().hex}".encode()
        digest = blake3(body).hex()
        self.call("PUT", f"/artifacts/projects/{p}/blobs/{digest}", content=body)
        with self._lock:
            self.acked.blobs.append(digest)
        if number % 3 == 0:
            job = self.call("POST", f"/scheduler/projects/{p}/jobs",
                            json={"command": ["sh", "-c", "echo attempt $CAIRN_ATTEMPT"], "code": None,
                                  "queue": JOB_QUEUE})
            with self._lock:
                self.acked.jobs.append(job["id"])

    def _writer(self, writer: int, max_rounds: int) -> None:
        try:
            for number in range(max_rounds):
                if self._stop.is_set():
                    return
                self.round(number, writer)
                with self._lock:
                    self._rounds += 1
        except BaseException as err:  # noqa: BLE001 - the test asserts there were none
            self.errors.append(f"writer {writer}: {err!r}")

    @property
    def rounds(self) -> int:
        with self._lock:
            return self._rounds

    @contextmanager
    def running(self, max_rounds: int = 1000) -> Iterator["Load"]:
        """Writers in the background for the block; on leaving, they finish their round and stop."""
        self._stop.clear()
        threads = [threading.Thread(target=self._writer, args=(w, max_rounds), daemon=True)
                   for w in range(self.writers)]
        for thread in threads:
            thread.start()
        try:
            yield self
        finally:
            self._stop.set()
            for thread in threads:
                thread.join(timeout=REQUEST_DEADLINE_S * 2)

    def wait_rounds(self, more: int, timeout: float = REQUEST_DEADLINE_S) -> None:
        """Until ``more`` further rounds completed (the load makes progress)."""
        target = self.rounds + more
        deadline = time.monotonic() + timeout
        while self.rounds < target:
            assert not self.errors, self.errors
            assert time.monotonic() < deadline, f"the load made no progress: {self.rounds} of {target} rounds"
            time.sleep(0.05)

    def window(self, since: float) -> float:
        """Seconds (a union of spans) since ``since`` during which some write was failing."""
        spans = sorted((max(a, since), b) for a, b in self.spans if b > since)
        total, end = 0.0, since
        for a, b in spans:
            if b > end:
                total += b - max(a, end)
                end = b
        return total
