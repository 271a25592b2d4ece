"""Metrics service wiring: the service runtime (its projection knows which runs exist), the
metrics stream, the Parquet writer, routes and health."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from cairn.kernel.service import ServiceRuntime, create_service_app
from cairn.services.metrics.announce import SummaryAnnouncer
from cairn.services.metrics.api import router
from cairn.services.metrics.projection import AGGREGATES, projection
from cairn.services.metrics.runtime import MetricsRuntime, MetricsSettings
from cairn.services.metrics.store import KnownRuns, MetricsStore
from cairn.services.metrics.traces_api import router as traces_router
from cairn.services.metrics.writer import MetricsWriter, Tail, ensure_stream

__all__ = ["MetricsSettings", "create_app"]


async def start_writer(app: FastAPI, runtime: ServiceRuntime) -> None:
    """The metrics stream, its SQLite bookkeeping and the writer that turns batches into Parquet."""
    settings: MetricsSettings = app.state.settings
    root = settings.data_dir / "metrics"
    await ensure_stream(runtime.log.nc, settings.replicas)
    store = MetricsStore(root / "metrics.sqlite3")

    async def close_store() -> None:
        store.close()

    runtime.defer(close_store)
    tail = Tail()
    writer = MetricsWriter(runtime.log.nc, store, root, tail, compact_after=settings.compact_after,
                           write_interval_s=settings.write_interval_s,
                           announcer=SummaryAnnouncer(store, runtime.log))  # metric.summarized events
    # not a singleton (cairn.kernel.leader): the metrics stream is a work queue read through one
    # shared durable, so each batch is written by exactly one replica, into that replica's own files
    # (compaction included); a cluster's replicas thus each hold part of the points (docs/cluster.md)
    await writer.start()
    runtime.defer(writer.stop)
    app.state.metrics = MetricsRuntime(settings, runtime, store, writer, tail, root)


def writer_health(app: FastAPI) -> dict[str, Any]:
    """Ready only while the writer is not failing; how far it has written in the metrics stream,
    the points still only in the tail; ``announcing``: summaries are written but not yet announced
    as metric.summarized (true until the first pass after a start); ``announce_error``: why the
    last announcement failed (it is retried; ingest and reads go on)."""
    metrics: MetricsRuntime = app.state.metrics
    return {"ready": metrics.writer.last_error is None, "written_seq": metrics.writer.written_seq,
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
