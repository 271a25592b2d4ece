"""What every service process shares: the event log connection, its projection, health and
admin routes, and how it is run (``python -m cairn.services.<name>``)."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any

import uvicorn
from fastapi import APIRouter, FastAPI, Request

from cairn.kernel.allocator import tune_allocator
from cairn.kernel.bodylimit import BodyLimit, BodyLimits
from cairn.kernel.commands import CommandHandler
from cairn.kernel.envelope import aggregate_subjects
from cairn.kernel.eventlog import EventLog
from cairn.kernel.http import install_error_handlers
from cairn.kernel.identity import (
    SITE_ADMIN,
    ServiceAuth,
    Signer,
    Verifier,
    load_service_key,
    requires,
)
from cairn.kernel.parked_routes import parked_router
from cairn.kernel.projection import BATCH as PROJECTION_BATCH
from cairn.kernel.projection import ProjectionRunner
from cairn.kernel.settings import ServiceSettings
from cairn.kernel.store import EventHandler, SqliteStore
from cairn.kernel.telemetry import TraceIdFilter, traced, traced_app

log = logging.getLogger(__name__)


class ServiceRuntime:
    """A service's live parts, kept on ``app.state.runtime``."""

    def __init__(self, name: str, event_log: EventLog, store: SqliteStore, runner: ProjectionRunner) -> None:
        self.name = name
        self.log = event_log
        self.store = store
        self.runner = runner
        self.commands = CommandHandler(event_log, store, runner)


def create_service_app(
    name: str,
    settings: ServiceSettings,
    *,
    make_store: Callable[[ServiceSettings], SqliteStore],
    handler: EventHandler,
    routers: list[APIRouter],
    description: str,
    projection_batch: int | None = None,
    projection_interval_s: float = 0.0,
    projection_aggregates: Sequence[str] = (),
    body_limits: Mapping[str, int | None] | None = None,
) -> FastAPI:
    """A FastAPI app for one service with its projection running in the background; one that
    reads only some aggregates' events names them (``projection_aggregates``), so the event log
    delivers only those. Request bodies are bounded while they stream in: 16 MiB by default,
    ``body_limits`` (path prefix -> bytes) for routes that take more or less."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        event_log = await EventLog.open(settings.nats_url, name=f"cairn-{name}", replicas=settings.replicas,
                                       credentials=settings.nats_credentials())
        store = make_store(settings)
        runner = ProjectionRunner(event_log, store, traced(handler, name), durable=f"projection-{name}",
                                  batch=projection_batch or PROJECTION_BATCH,
                                  min_interval_s=projection_interval_s,
                                  filter_subjects=aggregate_subjects(projection_aggregates), service=name,
                                  parking=True)
        await runner.start()
        app.state.runtime = ServiceRuntime(name, event_log, store, runner)
        try:
            yield
        finally:
            await runner.stop()
            await event_log.close()
            store.close()

    app = traced_app(name, title=f"cairn {name}", description=description, version="0.1.0",
                     lifespan=lifespan)
    install_error_handlers(app)
    app.add_middleware(BodyLimit, limits=BodyLimits.from_settings(settings, body_limits), service=name)
    accept_only_services(app, name, settings)

    @app.get("/healthz", tags=["ops"])
    async def healthz(request: Request) -> dict[str, Any]:
        """Ready when connected to the event log and the projection is running; ``parked``: how
        many events the projection set aside (it goes on without them, so it stays ready)."""
        runtime: ServiceRuntime = request.app.state.runtime
        return {
            "service": name,
            "ready": runtime.log.nc.is_connected and runtime.runner.last_error is None,
            "applied_seq": runtime.runner.applied,
            "error": runtime.runner.last_error,
            "parked": runtime.runner.parked_count(),
            "pid": os.getpid(),
        }

    @app.post("/admin/rebuild", tags=["ops"], **requires(SITE_ADMIN))
    async def rebuild(request: Request) -> dict[str, Any]:
        """Drop the projection and replay the whole event log into it."""
        runtime: ServiceRuntime = request.app.state.runtime
        loop = asyncio.get_running_loop()
        started = loop.time()
        reached = await runtime.runner.rebuild()
        return {"service": name, "applied_seq": reached, "seconds": round(loop.time() - started, 3),
                "content_hash": runtime.store.content_hash()}

    @app.get("/admin/content-hash", tags=["ops"], **requires(SITE_ADMIN))
    async def content_hash(request: Request) -> dict[str, Any]:
        """A hash of the whole read model (equal read models hash equal)."""
        runtime: ServiceRuntime = request.app.state.runtime
        return {"applied_seq": runtime.runner.applied, "content_hash": runtime.store.content_hash()}

    app.include_router(parked_router(name))
    for router in routers:
        app.include_router(router)
    return app


def accept_only_services(app: FastAPI, name: str, settings: ServiceSettings) -> None:
    """Answer only callers signed by the gateway or another service (401 otherwise, loopback
    too); ``app.state.signer`` signs this service's own calls to the others."""
    key = load_service_key(settings.data_dir, settings.service_key_file)
    app.add_middleware(ServiceAuth, verifier=Verifier(key))
    app.state.signer = Signer(key, name)


def serve(app: FastAPI, settings: ServiceSettings) -> None:
    """Run a service until SIGTERM/SIGINT; the port 0 default asks the OS for one."""
    tune_allocator()
    logging.basicConfig(level=settings.log_level.upper(),
                        format="ts=%(asctime)s level=%(levelname)s logger=%(name)s trace_id=%(trace_id)s %(message)s")
    for handler in logging.getLogger().handlers:
        handler.addFilter(TraceIdFilter())
    # loop "auto": uvloop (a dependency) where it is installed, which costs a third less CPU per request
    config = uvicorn.Config(app, host=settings.host, port=settings.port, log_level="warning", loop="auto",
                            access_log=False, lifespan="on")
    server = uvicorn.Server(config)
    signal.signal(signal.SIGTERM, lambda *_: setattr(server, "should_exit", True))
    server.run()
