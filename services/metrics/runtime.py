"""The metrics service's live parts and settings, kept on ``app.state.metrics``."""

from __future__ import annotations

from pathlib import Path

from cairn.kernel.envelope import subject_for
from cairn.kernel.errors import NotFound, Unavailable
from cairn.kernel.service import ServiceRuntime
from cairn.kernel.settings import ServiceSettings
from cairn.protocol import H_CAIRN_MIN_METRICS_SEQ
from cairn.services.metrics.store import KnownRuns, MetricsStore
from cairn.services.metrics.writer import MetricsWriter, Tail


class MetricsSettings(ServiceSettings):
    """Environment: CAIRN_NATS_URL, CAIRN_DATA_DIR, CAIRN_HOST, CAIRN_PORT, CAIRN_MAX_BATCH_POINTS, CAIRN_MAX_BATCH_BYTES,
    CAIRN_MAX_TAIL_POINTS (acked but unwritten points held for reads before ingest answers 503),
    CAIRN_COMPACT_AFTER (small parts per run that trigger a merge), CAIRN_WRITE_INTERVAL_S (how long
    the writer lets batches gather between Parquet writes when it is not behind; reads see the
    batches meanwhile), CAIRN_WRITER_REPLICAS (every metrics replica's name, ``main`` for the
    unnamed one: docs/cluster.md "Metrics replicas")."""

    max_batch_points: int = 10_000
    max_batch_bytes: int = 4 << 20
    max_tail_points: int = 2_000_000
    compact_after: int = 8
    write_interval_s: float = 0.2
    # every metrics replica's name ("main" for the unnamed one), comma-separated: each replica makes
    # the durables of all of them up front, so none misses a batch the others wrote (stream.py)
    writer_replicas: str = ""


class MetricsRuntime:
    """The service runtime's parts plus the metrics stream, the SQLite bookkeeping of the Parquet
    parts, the tail of unwritten points and the writer."""

    def __init__(self, settings: MetricsSettings, runtime: ServiceRuntime, store: MetricsStore,
                 writer: MetricsWriter, tail: Tail, root: Path) -> None:
        self.settings = settings
        self.runtime = runtime
        self.nc = runtime.log.nc
        self.js = self.nc.jetstream(timeout=10)
        self.store = store
        self.writer = writer
        self.tail = tail
        self.root = root
        self.known_runs: set[tuple[str, str]] = set()

    async def wait_shown(self, seq: int) -> None:
        """Hold a read until this replica shows every batch up to metrics-stream sequence ``seq``
        (bounded by CAIRN_MIN_SEQ_WAIT_S, then a 503: the batch is in the stream, this replica's
        writer is behind)."""
        timeout_s = self.settings.min_seq_wait_s
        if not await self.writer.wait_shown(seq, timeout_s):
            raise Unavailable(
                f"this metrics replica has written the metrics stream up to {self.writer.written_seq}, not yet "
                f"up to {seq} ({H_CAIRN_MIN_METRICS_SEQ}) after {timeout_s:g}s; the points are in the stream and "
                "this replica will show them shortly: retry",
                details={"written_seq": self.writer.written_seq, "min_metrics_seq": seq, "retry_after": 1})

    async def check_run(self, project: str, run_id: str) -> None:
        """404 unless the run exists. This service projects ``run.created`` itself; a run created
        a moment ago may not be applied yet, so a miss waits for the last event on the run's
        subject (none: no such run). Positive answers are cached (runs are never deleted)."""
        if (project, run_id) in self.known_runs:
            return
        runs: KnownRuns = self.runtime.store  # type: ignore[assignment]
        if not runs.has(project, run_id):
            last = await self.runtime.log.last_subject_sequence(subject_for(project, "run", run_id))
            if last:
                await self.runtime.runner.wait_for(last)
            if not runs.has(project, run_id):
                raise NotFound(f"run {run_id!r} does not exist in project {project!r}; create it first",
                               details={"project": project, "run_id": run_id})
        self.known_runs.add((project, run_id))
