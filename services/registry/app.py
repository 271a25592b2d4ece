"""Registry service wiring: settings, projection, routes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from cairn.kernel.service import create_service_app
from cairn.kernel.service_commands import CommandServer
from cairn.kernel.settings import ServiceSettings
from cairn.services.registry.api import router
from cairn.services.registry.api_run_record import router as run_record_router
from cairn.services.registry.commands_nats import registry_commands
from cairn.services.registry.projection import AGGREGATES, projection
from cairn.services.registry.store import RegistryStore


class RegistrySettings(ServiceSettings):
    """Environment: CAIRN_NATS_URL, CAIRN_DATA_DIR, CAIRN_HOST, CAIRN_PORT. Run search by
    ``metrics.<key>`` reads summaries projected from ``metric.summarized`` events: no metrics URL."""


def create_app(settings: RegistrySettings | None = None) -> FastAPI:
    settings = settings or RegistrySettings()
    app = create_service_app(
        "registry",
        settings,
        make_store=lambda s: RegistryStore(s.data_dir / "registry" / "registry.sqlite3"),
        handler=projection(),
        routers=[router, run_record_router],
        description="Projects, experiments, runs, models, model versions and aliases.",
        projection_aggregates=AGGREGATES,
    )
    service_lifespan = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with service_lifespan(app):
            runtime = app.state.runtime
            commands = CommandServer(runtime.log.nc, "registry", registry_commands(runtime))
            await commands.start()
            try:
                yield
            finally:
                await commands.stop()

    app.router.lifespan_context = lifespan
    return app
