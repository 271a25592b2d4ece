"""``cairn serve``: one model on this machine, or one replica of a deployment.

Plain mode serves ``NAME@ALIAS`` or ``NAME/VERSION`` of a project (``--follow``: poll the alias
and switch when it moves). Deployment mode (``--deployment P/NAME``) reads the deployment's config
through the gateway every ``--poll-s`` (contract: the ``seq`` field changes when anything does),
applies version, canary, shadow and sample rate, and reports the replica's state back.
The listening socket is bound before uvicorn starts, so ``--port 0`` prints the real port.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import socket
import sys
import uuid
from pathlib import Path
from typing import Any

import click

from cairn.serving.app import ServeOptions, create_app
from cairn.serving.flavours import LoadedModel
from cairn.serving.inference_log import HttpRelay, NatsInferenceSink
from cairn.serving.metrics import Metrics
from cairn.serving.package import ModelRef, fetch_package, held_digest, open_package, resolve
from cairn.serving.runtime import Runtime
from cairn.serving.sink import InferenceSink

log = logging.getLogger("cairn.serve")


class Source:
    """Loads versions of one model of one project through the gateway (blocking: run in a thread)."""

    def __init__(self, client: Any, project: str, model: str, cache: Path | None) -> None:
        self.client, self.project, self.model, self.cache = client, project, model, cache
        self.preloaded: dict[int, tuple[LoadedModel, dict[str, Any]]] = {}

    def __call__(self, version: int) -> tuple[LoadedModel, dict[str, Any]]:
        if version in self.preloaded:
            return self.preloaded.pop(version)
        record = resolve(self.client, self.project, ModelRef(self.model, version=version))
        return open_package(fetch_package(self.client, held_digest(record), self.cache)), record


async def follow_alias(runtime: Runtime, source: Source, alias: str, poll_s: float) -> None:
    """Switch whenever the alias points somewhere new; a version that fails is not retried until
    the alias moves again (the failure stays in /readyz's last_error)."""
    failed: int | None = None
    while True:
        await asyncio.sleep(poll_s)
        try:
            record = await asyncio.to_thread(resolve, source.client, source.project, ModelRef(source.model, alias=alias))
        except Exception as err:  # noqa: BLE001 - the gateway may be restarting; keep serving
            log.warning("cannot read alias %s: %s", alias, err)
            continue
        version = int(record["version"])
        current = runtime.primary.version if runtime.primary else None
        if version not in (current, failed):
            failed = None if await runtime.set_versions(version) else version


class ReplicaReports:
    """What a replica says to its deployment (``PUT .../replicas/ID``), one report at a time.
    ``stopped`` is the last word: a report in flight finishes first, and one asked for later (the
    config poll still switching versions while the server shuts down) is dropped, so the
    deployment never hears "started" from a replica that has gone."""

    def __init__(self, client: Any, path: str, url: str, managed: bool) -> None:
        self.client, self.path, self.url, self.managed = client, path, url, managed
        self._lock = asyncio.Lock()
        self.stopped = False

    def send(self, state: str, version: int, reason: str) -> None:
        """One report, blocking (a failure is logged: reporting must not stop serving)."""
        try:
            self.client.request("PUT", self.path, json={"url": self.url, "version": version, "state": state,
                                                        "reason": reason, "managed": self.managed})
        except Exception as err:  # noqa: BLE001 - reporting must not stop serving
            log.warning("cannot report replica state %s: %s", state, err)

    async def report(self, state: str, version: int, reason: str) -> None:
        async with self._lock:
            if self.stopped:
                return
            self.stopped = state == "stopped"
            await asyncio.to_thread(self.send, state, version, reason)


def deployment_plan(config: dict[str, Any]) -> tuple[int, tuple[int, float] | None, int | None]:
    traffic = config.get("traffic") or {}
    canary = traffic.get("canary")
    shadow = traffic.get("shadow")
    return (int(config["version"]), (int(canary["version"]), float(canary["percent"])) if canary else None,
            int(shadow["version"]) if shadow else None)


async def follow_deployment(runtime: Runtime, options: ServeOptions, client: Any, path: str, poll_s: float,
                            seq: int, stop: asyncio.Event) -> None:
    while not stop.is_set():
        await asyncio.sleep(poll_s)
        try:
            config = await asyncio.to_thread(client.request, "GET", path)
        except Exception as err:  # noqa: BLE001 - keep serving the current version meanwhile
            log.warning("cannot read deployment config: %s", err)
            continue
        if config.get("deleted"):
            stop.set()
            return
        if config["seq"] == seq:
            continue
        primary, canary, shadow = deployment_plan(config)
        options.sample_rate = float(config.get("sample_rate", 1.0))
        if await runtime.set_versions(primary, canary, shadow):
            seq = config["seq"]


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as err:
        raise click.ClickException(f"cannot listen on {host}:{port}: {err.strerror}; pick another --port") from None
    sock.listen(2048)
    sock.setblocking(False)
    return sock


def run_serve(*, ref: str | None, project: str | None, deployment: str | None, host: str, port: int,
              follow: bool, poll_s: float, public: bool, max_batch: int, max_wait_ms: float,
              max_body_bytes: int, canary: str | None, shadow: int | None, seed: int | None,
              cache_dir: Path | None, sink: InferenceSink | None = None) -> None:
    import uvicorn

    from cairn.sdk.client import Client

    client = Client()
    config: dict[str, Any] | None = None
    dep_path = ""
    if deployment:
        project, _, dep_name = deployment.partition("/")
        if not project or not dep_name:
            raise click.UsageError("--deployment takes PROJECT/NAME")
        dep_path = f"/api/v1/deployments/projects/{project}/deployments/{dep_name}"
        config = client.request("GET", dep_path)
        model_name = str(config["model"])
        public = public or bool(config.get("public"))
        if config.get("batching"):
            max_batch = int(config["batching"]["max_batch"])
            max_wait_ms = float(config["batching"]["max_wait_ms"])
        plan = deployment_plan(config)
    else:
        if not ref or not project:
            raise click.UsageError("give -p PROJECT and NAME@ALIAS (or NAME/VERSION), or --deployment P/NAME")
        parsed = ModelRef.parse(ref)
        model_name = parsed.name
        record = resolve(client, project, parsed)
        canary_plan = None
        if canary:
            version_text, _, percent = canary.partition(":")
            if not version_text.isdigit() or not percent or not 0 <= float(percent) <= 100:
                raise click.UsageError("--canary takes VERSION:PERCENT, e.g. 3:10")
            canary_plan = (int(version_text), float(percent))
        plan = (int(record["version"]), canary_plan, shadow)
    source = Source(client, project, model_name, cache_dir)
    sock = _bind(host, port)
    bound = sock.getsockname()[1]
    replica = os.environ.get("CAIRN_REPLICA_ID") or uuid.uuid4().hex[:12]
    managed = bool(os.environ.get("CAIRN_REPLICA_SET"))  # a job of the deployment's replica set
    url = f"http://{os.environ.get('CAIRN_HOST_ADDRESS') or host}:{bound}"
    reports = ReplicaReports(client, f"{dep_path}/replicas/{replica}", url, managed) if deployment else None
    try:  # load before listening: a model that cannot load is a clear error, never a traceback
        source.preloaded[plan[0]] = source(plan[0])
    except Exception as err:  # noqa: BLE001 - any load failure: one clear line, never a traceback
        message = getattr(err, "message", None) or f"{type(err).__name__}: {err}"
        if reports is not None:  # the deployment records replica_failed with the reason (the scheduler restarts us)
            reports.send("failed", plan[0], message[:2000])
        raise click.ClickException(f"{model_name} version {plan[0]} cannot be served: {message}") from None
    options = ServeOptions(project=project, gateway=client.url, public=public, max_body_bytes=max_body_bytes,
                           deployment=deployment.partition("/")[2] if deployment else None,
                           replica=replica if deployment else None,
                           sample_rate=float(config.get("sample_rate", 1.0)) if config else 1.0)

    runtime = Runtime(model_name, source, Metrics(model_name), max_batch=max_batch, max_wait_ms=max_wait_ms,
                      rng=random.Random(seed) if seed is not None else None,
                      report=reports.report if reports is not None else None)
    stop = asyncio.Event()
    server: uvicorn.Server | None = None

    async def startup() -> None:
        if not await runtime.set_versions(*plan):
            raise click.ClickException(runtime.last_error or "the model failed to load")
        if deployment:
            runtime.spawn(follow_deployment(runtime, options, client, dep_path, poll_s,
                                            int(config["seq"]) if config else 0, stop))
            runtime.spawn(_stop_when(stop))
        elif follow and ModelRef.parse(ref or "").alias:
            runtime.spawn(follow_alias(runtime, source, ModelRef.parse(ref or "").alias or "", poll_s))
        print(f"serving {model_name} version {plan[0]} on {url}", flush=True)

    async def _stop_when(event: asyncio.Event) -> None:
        await event.wait()
        if server is not None:
            server.should_exit = True

    async def shutdown() -> None:
        stop.set()  # the config poll stops switching; a switch already under way reports nothing after this
        if reports is not None and runtime.primary is not None:
            await reports.report("stopped", runtime.primary.version, "shutdown")

    if sink is None and deployment:  # sampled requests go to the inference log through the deployment
        relay = HttpRelay(client.url, client.token, project or "", options.deployment or "")
        # the app samples at the deployment's rate (it follows changes): the sink keeps every sample offered
        log_sink = NatsInferenceSink(None, project or "", options.deployment, replica=replica,
                                     publisher=relay, max_message_bytes=1 << 20)
        sink = log_sink

        async def start_sink() -> None:
            await log_sink.start()

        async def close_sink() -> None:
            await log_sink.close()
            await relay.close()

        startups, shutdowns = [start_sink, startup], [shutdown, close_sink]
    else:
        startups, shutdowns = [startup], [shutdown]

    async def on_startup() -> None:
        for step in startups:
            await step()

    async def on_shutdown() -> None:
        for step in shutdowns:
            await step()

    app = create_app(runtime, options, sink, on_startup=on_startup, on_shutdown=on_shutdown)
    server = uvicorn.Server(uvicorn.Config(app, loop="uvloop", http="httptools", log_level="warning",
                                           access_log=False, lifespan="on"))
    try:
        server.run(sockets=[sock])
    finally:
        client.close()
    if not server.started:
        sys.exit(1)


@click.command("serve")
@click.argument("ref", required=False)
@click.option("--project", "-p", envvar="CAIRN_PROJECT", help="Project of the model (or $CAIRN_PROJECT).")
@click.option("--deployment", help="Serve as a replica of deployment PROJECT/NAME (config read through the gateway).")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8500, show_default=True, type=click.IntRange(0, 65535), help="0: a free port.")
@click.option("--follow", is_flag=True, help="Poll the alias every --poll-s and switch when it moves.")
@click.option("--poll-s", default=1.0, show_default=True, type=click.FloatRange(0.05, 3600))
@click.option("--public", is_flag=True, help="No token needed (a mesh authenticates in front).")
@click.option("--max-batch", default=0, show_default=True, type=click.IntRange(0, 100_000),
              help="Adaptive batching: up to this many rows per model call (0/1: off).")
@click.option("--max-wait-ms", default=5.0, show_default=True, type=click.FloatRange(0, 10_000))
@click.option("--max-body-bytes", default=8 << 20, show_default=True, type=click.IntRange(1, 1 << 31))
@click.option("--canary", help="VERSION:PERCENT of requests to another version, e.g. 4:10.")
@click.option("--shadow", type=click.IntRange(1), help="VERSION that gets a copy of every request (answer discarded).")
@click.option("--seed", type=int, help="Seed for the canary choice and sampling (reproducible splits).")
@click.option("--cache-dir", type=click.Path(path_type=Path, file_okay=False),
              help="Model cache (default $CAIRN_MODEL_CACHE or ~/.cache/cairn/models).")
def serve(ref: str | None, project: str | None, deployment: str | None, host: str, port: int, follow: bool,
          poll_s: float, public: bool, max_batch: int, max_wait_ms: float, max_body_bytes: int,
          canary: str | None, shadow: int | None, seed: int | None, cache_dir: Path | None) -> None:
    """Serve a registered model over HTTP (MLflow /invocations and KServe v2).

    Example: cairn serve -p fraud fraud-model@production --port 8500 --follow
    """
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    run_serve(ref=ref, project=project, deployment=deployment, host=host, port=port, follow=follow, poll_s=poll_s,
              public=public, max_batch=max_batch, max_wait_ms=max_wait_ms, max_body_bytes=max_body_bytes,
              canary=canary, shadow=shadow, seed=seed, cache_dir=cache_dir)
