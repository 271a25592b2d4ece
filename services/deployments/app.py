"""Deployments service wiring: settings, projection, routes (the inference log's too), the alias
follower and the replica-set reconciler."""

from __future__ import annotations

from fastapi import FastAPI

from cairn.kernel.leader import Lease, run_singleton
from cairn.kernel.service import ServiceRuntime, create_service_app
from cairn.kernel.settings import ServiceSettings
from cairn.services.deployments.api import router
from cairn.services.deployments.inference_api import router as inference_router
from cairn.services.deployments.inference_api import start_inference_log
from cairn.services.deployments.projection import AGGREGATES, projection
from cairn.services.deployments.replicas import (
    AliasFollower,
    Reconciler,
    ReplicaSetClient,
    ReplicaSweeper,
    watch,
)
from cairn.services.deployments.store import DeploymentsStore


class DeploymentsSettings(ServiceSettings):
    """Environment: CAIRN_NATS_URL, CAIRN_DATA_DIR, CAIRN_HOST, CAIRN_PORT, and CAIRN_SCHEDULER_URL
    (the scheduler whose replica sets run the deployments' replicas; empty: none are started)."""

    scheduler_url: str = ""


async def start_background(app: FastAPI, runtime: ServiceRuntime) -> None:
    """Follow aliases and keep the replica sets in line, whenever the projection moves."""
    store = runtime.store
    assert isinstance(store, DeploymentsStore)
    settings = runtime.settings
    assert isinstance(settings, DeploymentsSettings)
    follower = AliasFollower(store, runtime.commands.execute)
    passes = [follower.follow]
    if settings.scheduler_url:
        client = ReplicaSetClient(settings.scheduler_url, runtime.signer.internal)
        runtime.defer(client.close)
        reconciler = Reconciler(store, client)
        sweeper = ReplicaSweeper(store, client, runtime.commands.execute)
        passes += [reconciler.reconcile, sweeper.sweep]


    async def lead(_: Lease) -> None:
        # a singleton: two replicas reconciling one replica set would both start the missing replica
        await watch(lambda: runtime.runner.applied, passes)

    await run_singleton(runtime, "deployments.controller", lead)


def create_app(settings: DeploymentsSettings | None = None) -> FastAPI:
    settings = settings or DeploymentsSettings()
    return create_service_app(
        "deployments",
        settings,
        make_store=lambda s: DeploymentsStore(s.read_model_dir("deployments") / "deployments.sqlite3"),
        handler=projection(),
        routers=[router, inference_router],
        description="Environments, which model version serves where, replicas, traffic splits, rollbacks.",
        projection_aggregates=AGGREGATES,
        on_start=[start_inference_log, start_background],
    )
