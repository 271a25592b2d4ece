"""Metrics service wiring: the service runtime (its projection knows which runs exist), the
metrics stream, the Parquet writer, routes and health."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from cairn.kernel.leader import run_singleton
from cairn.kernel.service import ServiceRuntime, create_service_app
from cairn.services.metrics.announce import SummaryAnnouncer
from cairn.services.metrics.api import router
from cairn.services.metrics.projection import AGGREGATES, projection
from cairn.services.metrics.runtime import MetricsRuntime, MetricsSettings
from cairn.services.metrics.store import KnownRuns, MetricsStore
from cairn.services.metrics.stream import (
    durable_for,
    ensure_durables,
    ensure_stream,
    is_work_queue,
    migrate_work_queue,
    wait_migrated,
    writer_replicas,
)
from cairn.services.metrics.traces_api import router as traces_router
from cairn.services.metrics.writer import MetricsWriter, Tail

__all__ = ["MetricsSettings", "create_app"]


async def start_writer(app: FastAPI, runtime: ServiceRuntime) -> None:
    """The metrics stream, this replica's durable on it, its SQLite bookkeeping and the writer that
    turns batches into Parquet; the ``metrics.announce`` lease decides which replica appends
    ``metric.summarized`` (every replica writes every point: services/metrics/stream.py)."""
    settings: MetricsSettings = app.state.settings
    root = settings.read_model_dir("metrics")  # a named replica's Parquet beside its own read model
    nc = runtime.log.nc
    store = MetricsStore(root / "metrics.sqlite3")

    async def close_store() -> None:
        store.close()

    runtime.defer(close_store)
    tail = Tail()
    known: KnownRuns = runtime.store  # type: ignore[assignment]
    writer = MetricsWriter(nc, store, root, tail, compact_after=settings.compact_after,
                           write_interval_s=settings.write_interval_s, durable=durable_for(settings.replica),
                           announcer=SummaryAnnouncer(store, runtime.log, known=known))  # metric.summarized
    info = await ensure_stream(nc, settings.replicas, first_seq=store.last_sequence() + 1)
    writers = writer_replicas(settings.writer_replicas, settings.replica)
    if is_work_queue(info):  # made by a build before replicas: the first listed replica migrates it
        if writers[0] != settings.replica:
            await wait_migrated(writer.js)
        else:
            writer.remove_orphans()
            await migrate_work_queue(nc, settings.replicas, writer.write)
    await ensure_durables(writer.js, writers, settings.replica, store.last_sequence(), str(root))
    writer.leading = lambda: False  # until the lease below is decided
    await writer.start()
    runtime.defer(writer.stop)
    announcing = await run_singleton(runtime, "metrics.announce", writer.lead)
    writer.leading = lambda: announcing.leading
    app.state.metrics = MetricsRuntime(settings, runtime, store, writer, tail, root)


def writer_health(app: FastAPI) -> dict[str, Any]:
    """Ready only while the writer is not failing; how far it has written in the metrics stream,
    the points still only in the tail; ``announcing``: summaries are written but not yet announced
    as metric.summarized (true until the first pass after a start); ``announce_error``: why the
    last announcement failed (it is retried; ingest and reads go on)."""
    metrics: MetricsRuntime = app.state.metrics
    return {"ready": metrics.writer.last_error is None, "written_seq": metrics.writer.written_seq,
            "announcer": metrics.writer.leading(),
            "tail_points": metrics.tail.rows, "announcing": metrics.writer.unannounced,
            "announce_error": metrics.writer.announce_error,
            "error": metrics.runtime.runner.last_error or metrics.writer.last_error}


def create_app(settings: MetricsSettings | None = None) -> FastAPI:
    """The metrics service: ingest into the CAIRN_METRICS stream, Parquet under data_dir/metrics."""
    settings = settings or MetricsSettings()
    # a batch is read whole before it is parsed: cut it off at the batch limit while it streams in
    app = create_service_app(
        "metrics",
        settings,
        make_store=lambda s: KnownRuns(s.read_model_dir("metrics") / "runs.sqlite3"),
        handler=projection(),
        routers=[router, traces_router],
        description="Metric points: batched ingest, Parquet storage, downsampled and cross-run queries.",
        projection_aggregates=AGGREGATES,
        body_limits={"/projects/*/runs/*/metrics": settings.max_batch_bytes},
        on_start=[start_writer],
        health=writer_health,
    )
    app.state.settings = settings
    return app
