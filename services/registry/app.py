"""Registry service wiring: settings, projection, routes, and the NATS command handlers."""

from __future__ import annotations

from fastapi import FastAPI

from cairn.kernel.service import ServiceRuntime, create_service_app
from cairn.kernel.service_commands import CommandServer, caught_up_with_log
from cairn.kernel.settings import ServiceSettings
from cairn.services.registry.api import router
from cairn.services.registry.api_genai import router as genai_router
from cairn.services.registry.api_logged_models import router as logged_models_router
from cairn.services.registry.api_model_extras import router as model_extras_router
from cairn.services.registry.api_run_record import router as run_record_router
from cairn.services.registry.api_run_start import router as run_start_router
from cairn.services.registry.commands_nats import registry_commands
from cairn.services.registry.projection import AGGREGATES, projection
from cairn.services.registry.store import RegistryStore


class RegistrySettings(ServiceSettings):
    """Environment: CAIRN_NATS_URL, CAIRN_DATA_DIR, CAIRN_HOST, CAIRN_PORT. Run search by
    ``metrics.<key>`` reads summaries projected from ``metric.summarized`` events: no metrics URL."""


async def serve_nats_commands(app: FastAPI, runtime: ServiceRuntime) -> None:
    """Agents and jobs reach a few registry commands over NATS (``cairn.cmd.registry.*``)."""
    commands = CommandServer(runtime.log.nc, "registry", registry_commands(runtime),
                             caught_up=caught_up_with_log(runtime))  # replicas: any one may answer
    await commands.start()
    runtime.defer(commands.stop)


def create_app(settings: RegistrySettings | None = None) -> FastAPI:
    settings = settings or RegistrySettings()
    app = create_service_app(
        "registry",
        settings,
        make_store=lambda s: RegistryStore(s.read_model_dir("registry") / "registry.sqlite3"),
        handler=projection(),
        routers=[run_start_router, model_extras_router, router, run_record_router, logged_models_router, genai_router],
        description="Projects, experiments, runs, models, model versions and aliases.",
        projection_aggregates=AGGREGATES,
        on_start=[serve_nats_commands],
    )
    return app
