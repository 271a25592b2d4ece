"""Metrics service wiring: NATS, the metrics stream, the Parquet writer, routes and health."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request

from cairn.kernel.bodylimit import BodyLimit, BodyLimits
from cairn.kernel.eventlog import EventLog, connect
from cairn.kernel.http import install_error_handlers
from cairn.kernel.service import accept_only_services
from cairn.kernel.telemetry import traced_app
from cairn.services.metrics.announce import SummaryAnnouncer
from cairn.services.metrics.api import router
from cairn.services.metrics.runtime import MetricsRuntime, MetricsSettings
from cairn.services.metrics.store import MetricsStore
from cairn.services.metrics.writer import MetricsWriter, Tail, ensure_stream

__all__ = ["MetricsSettings", "create_app"]


def create_app(settings: MetricsSettings | None = None) -> FastAPI:
    """The metrics service: ingest into the CAIRN_METRICS stream, Parquet under data_dir/metrics."""
    settings = settings or MetricsSettings()
    root = settings.data_dir / "metrics"

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        nc = await connect(settings.nats_url, name="cairn-metrics", credentials=settings.nats_credentials())
        await ensure_stream(nc, settings.replicas)
        store = MetricsStore(root / "metrics.sqlite3")
        tail = Tail()
        events = EventLog(nc, replicas=settings.replicas)  # for metric.summarized (announce.py)
        await events.ensure_stream()
        writer = MetricsWriter(nc, store, root, tail, compact_after=settings.compact_after,
                              write_interval_s=settings.write_interval_s,
                              announcer=SummaryAnnouncer(store, events))
        await writer.start()
        app.state.metrics = MetricsRuntime(settings, nc, store, writer, tail, root, app.state.signer, events)
        try:
            yield
        finally:
            await writer.stop()
            await app.state.metrics.http.aclose()
            if not nc.is_closed:
                await nc.close()  # not drain: a pending pull would hold shutdown for seconds
            store.close()

    app = traced_app("metrics", title="cairn metrics", version="0.1.0", lifespan=lifespan,
                     description="Metric points: batched ingest, Parquet storage, downsampled and "
                                 "cross-run queries.")
    install_error_handlers(app)
    # a batch is read whole before it is parsed: cut it off at the batch limit while it streams in
    batches = {"/projects/*/runs/*/metrics": settings.max_batch_bytes}
    app.add_middleware(BodyLimit, limits=BodyLimits.from_settings(settings, batches), service="metrics")
    accept_only_services(app, "metrics", settings)

    @app.get("/healthz", tags=["ops"])
    async def healthz(request: Request) -> dict[str, Any]:
        """Ready when connected to NATS and the writer is not failing. ``announcing``: summaries are
        written but not yet announced as metric.summarized (true until the first pass after a start);
        ``announce_error``: why the last announcement failed (it is retried; ingest and reads go on)."""
        rt: MetricsRuntime = request.app.state.metrics
        return {"service": "metrics", "ready": rt.nc.is_connected and rt.writer.last_error is None,
                "applied_seq": None, "written_seq": rt.writer.written_seq, "tail_points": rt.tail.rows,
                "announcing": rt.writer.unannounced, "announce_error": rt.writer.announce_error,
                "error": rt.writer.last_error, "pid": os.getpid()}

    app.include_router(router)
    return app
