"""Pipelines service wiring: settings, the projection (pipeline runs, their cache, and the facts
of other services the engine reads), the routes, and the background parts that move runs."""

from __future__ import annotations

from fastapi import FastAPI

from cairn.kernel.service import Hook, create_service_app
from cairn.kernel.settings import ServiceSettings
from cairn.services.pipelines.api import router
from cairn.services.pipelines.definitions import router as definitions_router  # part C
from cairn.services.pipelines.engine import start_engine
from cairn.services.pipelines.hooks import router as hooks_router  # part C
from cairn.services.pipelines.projection import AGGREGATES, projection
from cairn.services.pipelines.store import PipelinesStore
from cairn.services.pipelines.triggers_runtime import start_triggers  # part C


class PipelinesSettings(ServiceSettings):
    """Environment: CAIRN_NATS_URL, CAIRN_DATA_DIR, CAIRN_HOST, CAIRN_PORT; the services it calls
    (CAIRN_SCHEDULER_URL, CAIRN_REGISTRY_URL, CAIRN_ARTIFACTS_URL, CAIRN_METRICS_URL,
    CAIRN_DEPLOYMENTS_URL, CAIRN_MONITOR_URL: wired by ``cairn.up.service_wiring``);
    CAIRN_PIPELINES_TICK_S (how often the engine looks again when nothing moved) and
    CAIRN_PIPELINES_PUBLIC_URL (the root of run links in code-host statuses; empty: none)."""

    scheduler_url: str = ""
    registry_url: str = ""
    artifacts_url: str = ""
    metrics_url: str = ""
    deployments_url: str = ""
    monitor_url: str = ""
    pipelines_tick_s: float = 1.0
    pipelines_public_url: str = ""


# Background parts, started in this order once the projection runs (docs/pipelines.md, "The
# service"). Each follows services/monitor/alerts.py's shape: a task that waits on the projection
# moving, does its owed work, retries failures with backoff and is idempotent across restarts.
# Issue 21's other parts add their hooks here:
#   - the engine: ``from cairn.services.pipelines.engine import start_engine``
#   - triggers:   ``from cairn.services.pipelines.triggers_runtime import start_triggers``
BACKGROUND: list[Hook] = [
    start_engine,
    start_triggers,
]


def create_app(settings: PipelinesSettings | None = None) -> FastAPI:
    settings = settings or PipelinesSettings()
    return create_service_app(
        "pipelines",
        settings,
        make_store=lambda s: PipelinesStore(s.read_model_dir("pipelines") / "pipelines.sqlite3"),
        handler=projection(),
        routers=[router, definitions_router, hooks_router],
        description="Pipelines: CI/CD for models; runs of a pipeline's steps, gates, approvals and their cache.",
        projection_aggregates=AGGREGATES,
        on_start=BACKGROUND,
    )
