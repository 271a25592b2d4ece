"""Monitor service wiring: settings, projection, routes, the windows' store and the inference
consumer that feeds them and has the rules decided."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import FastAPI
from pydantic import Field, field_validator

from cairn.kernel.leader import Lease, run_singleton
from cairn.kernel.service import ServiceRuntime, create_service_app
from cairn.kernel.settings import ServiceSettings
from cairn.kernel.tasks import stop_tasks
from cairn.services.monitor.alerts import ActionTaker, RuleDecider
from cairn.services.monitor.api import router
from cairn.services.monitor.consumer import InferenceConsumer, windows_durable
from cairn.services.monitor.domain import parse_sizes
from cairn.services.monitor.profiles import ProfileBlobs, reference_loader
from cairn.services.monitor.projection import AGGREGATES, projection
from cairn.services.monitor.store import MonitorStore
from cairn.services.monitor.window_store import WindowStore

PROFILE_BODY = 64 << 20  # a profile of many columns (1,000 numeric columns is a few MiB)


class MonitorSettings(ServiceSettings):
    """Environment: CAIRN_NATS_URL, CAIRN_DATA_DIR, CAIRN_HOST, CAIRN_PORT; CAIRN_MONITOR_WINDOWS
    (window sizes, default ``1m,1h,1d``; tests use seconds, e.g. ``2s,1d``), CAIRN_MONITOR_GRACE_S
    (how long past its end a window waits for late samples, default 5), CAIRN_MONITOR_TICK_S (how
    often quiet windows are closed by the clock, default 1) and CAIRN_DEPLOYMENTS_URL (the
    deployments service, for rollback actions; empty: none are carried out) and CAIRN_ARTIFACTS_URL
    (the artifacts service, where registered profiles are stored; empty: registering is a 503)."""

    monitor_windows: str = "1m,1h,1d"
    monitor_grace_s: float = Field(default=5.0, ge=0, le=3600)
    monitor_tick_s: float = Field(default=1.0, gt=0, le=60)
    deployments_url: str = ""
    artifacts_url: str = ""

    @field_validator("monitor_windows")
    @classmethod
    def _windows(cls, value: str) -> str:
        parse_sizes(value)  # ValueError names the bad size
        return value


async def start_profiles(app: FastAPI, runtime: ServiceRuntime) -> None:
    """Profiles live in the artifacts service, called with this monitor's own identity."""
    settings = runtime.settings
    assert isinstance(settings, MonitorSettings)
    blobs = ProfileBlobs(settings.artifacts_url, runtime.signer.internal, settings.data_dir / "monitor" / "profiles")
    app.state.profiles = blobs
    runtime.defer(blobs.close)


async def start_windows(app: FastAPI, runtime: ServiceRuntime) -> None:
    settings = runtime.settings
    assert isinstance(settings, MonitorSettings)
    store = runtime.store
    assert isinstance(store, MonitorStore)
    windows = WindowStore(settings.read_model_dir("monitor") / "windows.sqlite3", parse_sizes(settings.monitor_windows),
                          settings.monitor_grace_s, reference_loader(store, app.state.profiles))
    runtime.defer(_closing(windows))
    decider = RuleDecider(runtime, windows)
    consumer = InferenceConsumer(runtime.log.nc, windows, decider.decide_pending, tick_s=settings.monitor_tick_s,
                                 durable=windows_durable(settings.replica))
    app.state.windows, app.state.consumer, app.state.decider = windows, consumer, decider
    # on every replica, each with a durable and windows of its own (consumer.py): each answers
    # window reads; deciding twice is a no-op (a window at or before the alert's last decides nothing)
    _background(runtime, consumer.run())


async def start_actions(app: FastAPI, runtime: ServiceRuntime) -> None:
    """Carry out the actions alerts owe: at start (those a killed monitor left owed) and
    whenever the projection moves."""
    settings = runtime.settings
    assert isinstance(settings, MonitorSettings)
    taker = ActionTaker(runtime, settings.deployments_url)
    app.state.actions = taker
    runtime.defer(taker.close)

    async def lead(_: Lease) -> None:
        await taker.run()

    # a singleton: an owed action (a rollback, a webhook) is carried out by one replica
    await run_singleton(runtime, "monitor.actions", lead)


def _background(runtime: ServiceRuntime, work: Any) -> None:
    """Run ``work`` as a task that the runtime cancels on its way down."""
    task = asyncio.create_task(work)

    async def stop() -> None:
        await stop_tasks(task)

    runtime.defer(stop)


def _closing(windows: WindowStore) -> Any:
    async def close() -> None:
        windows.close()

    return close


def health(app: FastAPI) -> dict[str, Any]:
    """``inference_seq``: the inference stream position the windows hold; ``consumer_lag``:
    messages not yet counted; ``pending_decisions``: closed windows whose rules are still to
    decide; ``late_requests``: samples that came after their window closed (not counted);
    ``actions_owed``: alert actions fired and not yet carried out (``action_error``: why the last
    try failed)."""
    windows: WindowStore | None = getattr(app.state, "windows", None)
    if windows is None:
        return {"ready": False}
    consumer: InferenceConsumer = app.state.consumer
    decider: RuleDecider = app.state.decider
    actions: ActionTaker | None = getattr(app.state, "actions", None)
    return {"inference_seq": windows.position(), "consumer_lag": consumer.lag,
            "pending_decisions": len(windows.pending()), "late_requests": windows.counter("late_requests"),
            "unmatched_labels": windows.counter("unmatched_labels"),
            "consumer_error": consumer.error, "decision_error": decider.last_error,
            "actions_owed": actions.store.actions_owed_count() if actions else None,
            "action_error": actions.last_error if actions else None,
            "windows": list(windows.sizes)}


def create_app(settings: MonitorSettings | None = None) -> FastAPI:
    settings = settings or MonitorSettings()
    app = create_service_app(
        "monitor",
        settings,
        make_store=lambda s: MonitorStore(s.read_model_dir("monitor") / "monitor.sqlite3"),
        handler=projection(),
        routers=[router],
        description="Inference windows per deployment, reference profiles, drift, live performance, alert rules.",
        projection_aggregates=AGGREGATES,
        body_limits={"/projects/*/profiles": PROFILE_BODY},
        on_start=[start_profiles, start_windows, start_actions],
        health=health,
    )
    return app
