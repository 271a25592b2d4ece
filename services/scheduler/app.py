"""Scheduler wiring: settings, projection, the live core (dispatcher, leases, reports), routes."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from pydantic import Field

from cairn.kernel.leader import Lease, run_singleton
from cairn.kernel.natsauth import NatsCredentials
from cairn.kernel.service import ServiceRuntime, create_service_app
from cairn.kernel.settings import ServiceSettings
from cairn.services.scheduler.agent_status import router as agent_status_router
from cairn.services.scheduler.api import router
from cairn.services.scheduler.core import SchedulerCore
from cairn.services.scheduler.logs import ensure_logs_stream
from cairn.services.scheduler.projection import AGGREGATES, projection
from cairn.services.scheduler.registry_client import RegistryClient
from cairn.services.scheduler.replica_api import router as replica_router
from cairn.services.scheduler.replica_core import ReplicaReconciler
from cairn.services.scheduler.store import SchedulerStore
from cairn.services.scheduler.sweep_jobs import SchedulerJobs
from cairn.services.scheduler.sweeps.api import router as sweeps_router
from cairn.services.scheduler.sweeps.driver import SweepDriver
from cairn.services.scheduler.sweeps.ports import EventLogSink, HttpMetricReader
from cairn.services.scheduler.sweeps.projection import SweepQueries


class SchedulerSettings(ServiceSettings):
    """Environment: CAIRN_SCHEDULER_LEASE_S (an agent silent this long is
    lost), CAIRN_SCHEDULER_HEARTBEAT_S (how often agents beat), CAIRN_SCHEDULER_AGENT_NATS_URL (the
    NATS URL agents on other machines should use; default: CAIRN_NATS_URL),
    CAIRN_SCHEDULER_AGENT_NATS_CREDS (a 0600 file with the NATS user agents connect as, handed to
    each agent in its registration answer; none: agents connect without credentials),
    CAIRN_METRICS_URL (sweeps read their trials' metrics there),
    CAIRN_SCHEDULER_PROJECTION_INTERVAL_S (apply the read model at most this often; default 0),
    plus the common ones."""

    metrics_url: str = ""
    scheduler_lease_s: float = Field(default=15.0, gt=0)
    scheduler_heartbeat_s: float = Field(default=3.0, gt=0)
    scheduler_agent_nats_url: str = ""
    scheduler_agent_nats_creds: Path | None = None
    # apply the read model at most this often (0: as events arrive): a replica that takes few
    # commands may batch; it is also how tests make a replica lag behind the log on purpose
    scheduler_projection_interval_s: float = Field(default=0.0, ge=0)


async def start_scheduling(app: FastAPI, runtime: ServiceRuntime) -> None:
    """The live scheduler next to the projection: the logs stream, the dispatcher with its
    leases and reports (``app.state.core``), the replica sets' reconciler
    (``app.state.replicas``) and the sweep driver. The dispatcher, the reconciler and the sweep
    driver are singletons: each runs on the replica that holds its lease (cairn.kernel.leader)."""
    settings: SchedulerSettings = app.state.settings
    await ensure_logs_stream(runtime.log.nc, runtime.log.replicas)
    registry = RegistryClient(runtime.log.nc)
    runtime.defer(registry.close)
    core = SchedulerCore(runtime, registry, lease_s=settings.scheduler_lease_s)
    app.state.core = core
    await core.start()
    runtime.defer(core.stop)
    replicas = ReplicaReconciler(core)
    app.state.replicas = replicas
    replicas.start()
    runtime.defer(replicas.stop)
    await run_singleton(runtime, "scheduler.replica_sets", replicas.lead)
    driver = SweepDriver(SweepQueries(runtime.store), jobs=SchedulerJobs(core),
                         metrics=HttpMetricReader(settings.metrics_url, runtime.signer),
                         sink=EventLogSink(runtime.log))


    async def drive_sweeps(_: Lease) -> None:
        await driver.run(interval_s=1.0)

    sweeps = await run_singleton(runtime, "scheduler.sweeps", drive_sweeps)

    async def on_job_finished(job_id: str, status: str, message: str | None = None) -> None:
        if sweeps.leading:  # a standby's driver does not step sweeps: the leader's does
            await driver.on_job_finished(job_id, status, message)

    core.on_job_final.append(on_job_finished)


def create_app(settings: SchedulerSettings | None = None) -> FastAPI:
    settings = settings or SchedulerSettings()
    app = create_service_app(
        "scheduler",
        settings,
        make_store=lambda s: SchedulerStore(s.read_model_dir("scheduler") / "scheduler.sqlite3"),
        handler=projection(),
        routers=[router, replica_router, sweeps_router, agent_status_router],
        description="Queues, jobs, attempts, agents and replica sets.",
        projection_aggregates=AGGREGATES,
        projection_interval_s=settings.scheduler_projection_interval_s,
        on_start=[start_scheduling],
    )
    app.state.settings = settings
    # read at start, so a missing or too-open file stops the scheduler instead of each registration
    app.state.agent_nats_credentials = (NatsCredentials.read(settings.scheduler_agent_nats_creds)
                                        if settings.scheduler_agent_nats_creds else None)
    return app
