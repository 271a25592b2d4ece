"""Lineage service wiring: settings, the DuckDB projection of every event of record, routes."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from cairn.kernel.service import create_service_app
from cairn.kernel.settings import ServiceSettings
from cairn.services.lineage.api import router
from cairn.services.lineage.projection import projection
from cairn.services.lineage.store import LineageStore


class LineageSettings(ServiceSettings):
    """Environment: CAIRN_NATS_URL, CAIRN_DATA_DIR, CAIRN_HOST, CAIRN_PORT, CAIRN_LINEAGE_THREADS
    (DuckDB threads, 1: traversals are many small steps, where more threads cost more than they
    give), CAIRN_LINEAGE_MEMORY_LIMIT (DuckDB memory limit, 1GB), CAIRN_LINEAGE_APPLY_INTERVAL_S
    (at most one DuckDB transaction per this many seconds, 0.25: under a steady stream of events a
    transaction per handful of events costs milliseconds of CPU each; the graph lags by at most this)."""

    lineage_threads: int = 1
    lineage_memory_limit: str = "1GB"
    lineage_apply_interval_s: float = 0.25


def create_app(settings: LineageSettings | None = None) -> FastAPI:
    settings = settings or LineageSettings()

    def make_store(s: Any) -> Any:
        return LineageStore(s.read_model_dir("lineage") / "lineage.duckdb", threads=settings.lineage_threads,
                            memory_limit=settings.lineage_memory_limit)

    return create_service_app(
        "lineage",
        settings,
        make_store=make_store,
        handler=projection(),
        routers=[router],
        projection_batch=4096,  # a DuckDB transaction costs the same for 500 events or 4,000
        projection_interval_s=settings.lineage_apply_interval_s,
        description="Lineage: a DuckDB graph of datasets, runs, blobs, models and aliases, built from "
                    "every event of record; upstream, impact, as-of, OpenLineage export, admin SQL.",
    )
