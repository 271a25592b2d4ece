"""What every service process shares: the event log connection, its projection, health and
admin routes, and how it is run (``python -m cairn.services.<name>``)."""

from __future__ import annotations

import asyncio
import faulthandler
import logging
import os
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Annotated, Any

import uvicorn
from fastapi import APIRouter, Depends, FastAPI, Request

from cairn.kernel.allocator import tune_allocator
from cairn.kernel.bodylimit import BodyLimit, BodyLimits
from cairn.kernel.commands import CommandHandler
from cairn.kernel.consistency import ReadYourWrites
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
from cairn.kernel.store import EventHandler, ProjectionStore, SqliteStore
from cairn.kernel.telemetry import TraceIdFilter, traced, traced_app

log = logging.getLogger(__name__)
KEEP_ALIVE_S = 75  # seconds an idle HTTP connection stays open: above the gateway pool's 30 s


Hook = Callable[[FastAPI, "ServiceRuntime"], Awaitable[None]]
Health = Callable[[FastAPI], dict[str, Any]]


class ServiceRuntime:
    """A service's live parts, kept on ``app.state.runtime``: its settings, the event log, its
    read model, the projection runner that keeps it, the command handler, the signer for calls
    to other services, and the service's own parts that its start hooks add (``defer`` their
    stops: they run in reverse order when the service stops)."""

    def __init__(self, name: str, settings: ServiceSettings, event_log: EventLog, store: ProjectionStore,
                 runner: ProjectionRunner, signer: Signer) -> None:
        self.name = name
        self.settings = settings
        self.log = event_log
        self.store = store
        self.runner = runner
        self.signer = signer
        # commands decide from aggregate snapshots, which only SQLite read models keep
        self._commands = CommandHandler(event_log, store, runner) if isinstance(store, SqliteStore) else None
        self._stops: list[Callable[[], Awaitable[Any]]] = []
        self.leases: list[Any] = []  # singletons' leases this replica campaigns for (cairn.kernel.leader)
        self.lease_store: Any = None

    @property
    def commands(self) -> CommandHandler:
        if self._commands is None:
            raise RuntimeError(f"the {self.name} service keeps no aggregates: it cannot run commands")
        return self._commands

    def defer(self, stop: Callable[[], Awaitable[Any]]) -> None:
        """Run ``stop`` when the service stops (after the parts started later have stopped)."""
        self._stops.append(stop)

    async def stop(self) -> None:
        loop = asyncio.get_running_loop()
        while self._stops:
            stop = self._stops.pop()
            started = loop.time()
            try:
                await stop()
            except Exception:  # noqa: BLE001 - one part failing to stop must not keep the others running
                log.exception("service=%s stopping a part failed", self.name)
            took = loop.time() - started
            if took > 1.0:  # a stop that waits on something: say which
                log.warning("service=%s stopping %s took %.1fs", self.name, getattr(stop, "__qualname__", stop), took)

    def health(self) -> dict[str, Any]:
        """Ready when connected to the event log and the projection is running; ``parked``: how
        many events the projection set aside (it goes on without them, so it stays ready)."""
        return {
            "service": self.name,
            "ready": self.log.nc.is_connected and self.runner.last_error is None,
            "applied_seq": self.runner.applied,
            "error": self.runner.last_error,
            "parked": self.runner.parked_count(),
            "pid": os.getpid(),
            "leases": [{"name": lease.name, "term": lease.term} for lease in self.leases if lease.holds()],
        }


async def current_runtime(request: Request) -> ServiceRuntime:
    """The service's :class:`ServiceRuntime`, as a FastAPI dependency (``Runtime`` below)."""
    runtime: ServiceRuntime = request.app.state.runtime
    return runtime


Runtime = Annotated[ServiceRuntime, Depends(current_runtime)]


def create_service_app(
    name: str,
    settings: ServiceSettings,
    *,
    make_store: Callable[[ServiceSettings], ProjectionStore],
    handler: EventHandler,
    routers: Sequence[APIRouter],
    description: str,
    projection_batch: int | None = None,
    projection_interval_s: float = 0.0,
    projection_aggregates: Sequence[str] = (),
    body_limits: Mapping[str, int | None] | BodyLimits | None = None,
    on_start: Sequence[Hook] = (),
    health: Health | None = None,
    public: bool = False,
    admin_prefix: str = "",
    admin_dependencies: Sequence[Any] = (),
    open_prefixes: Sequence[str] = (),
) -> FastAPI:
    """The one way to make a service: a FastAPI app whose start opens the event log and the read
    model, starts the projection (parking poison events), then runs ``on_start`` hooks in order
    (each gets the app and the :class:`ServiceRuntime`, adds its parts and defers their
    stops); stopping undoes it all in reverse.

    - A projection that reads only some aggregates' events names them (``projection_aggregates``),
      so the event log delivers only those.
    - Request bodies are bounded while they stream in: 16 MiB by default, ``body_limits`` (path
      prefix -> bytes) for routes that take more or less.
    - ``/healthz`` answers :meth:`ServiceRuntime.health`, merged with the service's ``health``
      (its ``ready`` and the runtime's must both hold).
    - Callers must be signed by the gateway or another service, except for a ``public`` app (the
      gateway), which authenticates its callers itself; its kernel routes (rebuild, content hash,
      parked events) sit under ``admin_prefix`` behind ``admin_dependencies``. Paths under
      ``open_prefixes`` need no signed caller: their routes check an authorization of their own
      (the artifacts service's signed transfer URLs).
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        _dump_tasks_on_sigusr2()
        event_log = await EventLog.open(settings.nats_url, name=f"cairn-{name}", replicas=settings.replicas,
                                       credentials=settings.nats_credentials())
        store = make_store(settings)
        runner = ProjectionRunner(event_log, store, traced(handler, name), durable=projection_durable(name, settings.replica),
                                  batch=projection_batch or PROJECTION_BATCH,
                                  min_interval_s=projection_interval_s,
                                  filter_subjects=aggregate_subjects(projection_aggregates), service=name,
                                  parking=True)
        runtime = ServiceRuntime(name, settings, event_log, store, runner, app.state.signer)
        runtime.defer(_closing(event_log, store))
        app.state.runtime = runtime
        try:
            await runner.start()
            runtime.defer(runner.stop)
            for hook in on_start:
                await hook(app, runtime)
        except BaseException:
            await runtime.stop()
            raise
        try:
            yield
        finally:
            await runtime.stop()

    app = traced_app(name, title="cairn" if public else f"cairn {name}", description=description,
                     version="0.1.0", lifespan=lifespan)
    install_error_handlers(app)
    # innermost of the middlewares: callers are verified before a request may wait for a sequence
    app.add_middleware(ReadYourWrites, wait=not public)
    limits = body_limits if isinstance(body_limits, BodyLimits) else BodyLimits.from_settings(settings, body_limits)
    app.add_middleware(BodyLimit, limits=limits, service=name)
    key = load_service_key(settings.data_dir, settings.service_key_file)
    app.state.signer = Signer(key, name)  # signs this service's own calls to the others
    if not public:
        app.add_middleware(ServiceAuth, verifier=Verifier(key), open_prefixes=tuple(open_prefixes))

        @app.get("/healthz", tags=["ops"])
        async def healthz(request: Request) -> dict[str, Any]:
            """Ready when connected to the event log, the projection is running and the service's
            own parts are well; ``parked``: events the projection set aside."""
            runtime: ServiceRuntime = request.app.state.runtime
            report = runtime.health()
            if health is not None:
                own = health(request.app)
                report = {**report, **own, "ready": report["ready"] and own.get("ready", True)}
            return report

    app.include_router(_admin_router(name), prefix=admin_prefix, dependencies=list(admin_dependencies))
    for router in routers:
        app.include_router(router)
    return app


def _dump_tasks_on_sigusr2() -> None:
    """`kill -USR2 <pid>`: the stack of every asyncio task into the log (SIGUSR1 gives the
    threads'): where a service that does not stop, or does not answer, is waiting."""

    def dump() -> None:
        tasks = asyncio.all_tasks()
        print(f"--- {len(tasks)} asyncio tasks", file=sys.stderr)
        for task in tasks:
            task.print_stack(file=sys.stderr)
        sys.stderr.flush()

    try:
        asyncio.get_running_loop().add_signal_handler(signal.SIGUSR2, dump)
    except (ValueError, RuntimeError, NotImplementedError):  # not the main thread (an app under test)
        pass


def projection_durable(service: str, replica: str = "") -> str:
    """The durable consumer of a service's projection: one per replica, so each replica's read
    model sees every event (replicas sharing one consumer would split the events between them)."""
    return f"projection-{service}-{replica}" if replica else f"projection-{service}"


def _closing(event_log: EventLog, store: ProjectionStore) -> Callable[[], Awaitable[None]]:
    async def close() -> None:
        await event_log.close()
        store.close()

    return close


def _admin_router(name: str) -> APIRouter:
    """Site admins' operations on the read model: rebuild, content hash, parked events."""
    router = APIRouter(tags=["ops"])

    @router.post("/admin/rebuild", **requires(SITE_ADMIN))
    async def rebuild(request: Request) -> dict[str, Any]:
        """Drop the projection and replay the whole event log into it."""
        runtime: ServiceRuntime = request.app.state.runtime
        loop = asyncio.get_running_loop()
        started = loop.time()
        reached = await runtime.runner.rebuild()
        return {"service": name, "applied_seq": reached, "seconds": round(loop.time() - started, 3),
                "content_hash": runtime.store.content_hash()}

    @router.get("/admin/content-hash", **requires(SITE_ADMIN))
    async def content_hash(request: Request) -> dict[str, Any]:
        """A hash of the whole read model (equal read models hash equal)."""
        runtime: ServiceRuntime = request.app.state.runtime
        return {"applied_seq": runtime.runner.applied, "content_hash": runtime.store.content_hash()}

    router.include_router(parked_router(name))
    return router


def serve(app: FastAPI, settings: ServiceSettings) -> None:
    """Run a service until SIGTERM/SIGINT; the port 0 default asks the OS for one."""
    tune_allocator()
    logging.basicConfig(level=settings.log_level.upper(),
                        format="ts=%(asctime)s level=%(levelname)s logger=%(name)s trace_id=%(trace_id)s %(message)s")
    for handler in logging.getLogger().handlers:
        handler.addFilter(TraceIdFilter())
    # loop "auto": uvloop (a dependency) where it is installed, which costs a third less CPU per request
    # idle connections live longer here than in the gateway's pool (30 s), so the gateway is always
    # the side that closes one: with uvicorn's 5 s default a service could close a connection the
    # gateway was just reusing, and that request failed (ClientOSError, a 503)
    config = uvicorn.Config(app, host=settings.host, port=settings.port, log_level="warning", loop="auto",
                            access_log=False, lifespan="on", timeout_keep_alive=KEEP_ALIVE_S)
    server = uvicorn.Server(config)
    signal.signal(signal.SIGTERM, lambda *_: setattr(server, "should_exit", True))
    # `kill -USR1 <pid>` writes every thread's stack to the log, `kill -USR2` every asyncio task's:
    # where a service that does not stop (or does not answer) is waiting (docs/architecture.md "Processes")
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    server.run()
