"""The serving HTTP API (Starlette): MLflow's ``/invocations``, the Open Inference Protocol's
``/v2/models/<name>``, health, readiness and Prometheus metrics.

Every answer carries ``X-Request-Id`` (the caller's, or a new one) and ``X-Model-Version``.
Callers prove a role on the project with a Cairn token, checked against the gateway's
``/api/v1/whoami`` and cached for ``auth_ttl_s``; ``public`` turns that off for a mesh that
authenticates in front of the endpoint.
"""

from __future__ import annotations

import hashlib
import os
import re
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import numpy as np
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from cairn.kernel.errors import (
    CairnError,
    Forbidden,
    NotFound,
    PayloadTooLarge,
    Unauthorized,
    Unavailable,
)
from cairn.serving.inputs import conform, parse_invocation, parse_v2
from cairn.serving.runtime import Runtime
from cairn.serving.sink import InferenceSample, InferenceSink, NoSink

V2_OUT = {"f": "FP64", "i": "INT64", "u": "INT64", "b": "BOOL"}
SHADOW_MAX_INFLIGHT = 64
REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")


def request_id_of(given: Any) -> str:
    """The caller's request id when it is a sane token (it is echoed and logged), else a new one."""
    if isinstance(given, (str, int)) and REQUEST_ID.fullmatch(str(given)):
        return str(given)
    return uuid.uuid4().hex


@dataclass
class ServeOptions:
    project: str
    gateway: str
    public: bool = False
    max_body_bytes: int = 8 << 20
    auth_ttl_s: float = 30.0
    deployment: str | None = None
    replica: str | None = None
    sample_rate: float = 1.0


class Authenticator:
    """Bearer tokens checked against the gateway; answers cached by token hash for ``ttl_s``."""

    def __init__(self, gateway: str, project: str, ttl_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.gateway, self.project, self.ttl_s, self.clock = gateway, project, ttl_s, clock
        self.cache: dict[str, tuple[float, bool]] = {}
        self.http = httpx.AsyncClient(base_url=gateway, timeout=10.0)

    async def check(self, header: str | None) -> None:
        if not header or not header.lower().startswith("bearer ") or not header[7:].strip():
            raise Unauthorized("send a Cairn token: Authorization: Bearer <token>")
        key = hashlib.sha256(header[7:].strip().encode()).hexdigest()
        now = self.clock()
        hit = self.cache.get(key)
        if hit is None or hit[0] < now:
            try:
                resp = await self.http.get("/api/v1/whoami", headers={"Authorization": header})
            except httpx.TransportError:
                raise Unavailable("cannot reach the Cairn gateway to check the token; try again") from None
            if resp.status_code == 401:
                allowed = None
            elif resp.status_code >= 400:
                raise Unavailable(f"the gateway answered {resp.status_code} to a token check; try again")
            else:
                me = resp.json()
                allowed = bool(me.get("site_admin")) or self.project in (me.get("projects") or {})
            if allowed is None:
                raise Unauthorized("the token is not valid (unknown, revoked or expired)")
            hit = (now + self.ttl_s, allowed)
            if len(self.cache) > 10_000:
                self.cache.clear()
            self.cache[key] = hit
        if not hit[1]:
            raise Forbidden(f"the token has no role on project {self.project!r}")


def _error(err: CairnError, v2: bool) -> dict[str, Any]:
    return {"error": err.message} if v2 else err.to_body()


async def _body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"the body is {declared} bytes; the limit is {limit} (--max-body-bytes)")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"the body is over the limit of {limit} bytes (--max-body-bytes)")
        chunks.append(chunk)
    return b"".join(chunks)


def _v2_output(predictions: list[Any]) -> dict[str, Any]:
    array = np.asarray(predictions)
    return {"name": "predictions", "shape": list(array.shape),
            "datatype": V2_OUT.get(array.dtype.kind, "BYTES"), "data": array.reshape(-1).tolist()}


def create_app(runtime: Runtime, options: ServeOptions, sink: InferenceSink | None = None,
               on_startup: Callable[[], Awaitable[Any]] | None = None,
               on_shutdown: Callable[[], Awaitable[Any]] | None = None) -> Starlette:
    """The ASGI app around a :class:`Runtime`; ``on_startup`` loads the first version (and starts
    any watcher) before the first request is accepted."""
    sink = sink or NoSink()
    auth = None if options.public else Authenticator(options.gateway, options.project, options.auth_ttl_s)
    metrics = runtime.metrics

    def sample(request_id: str, slot_version: int, role: str, frame: Any, out: Any, status: int,
               started: float, wall: float) -> None:
        if options.sample_rate < 1.0 and runtime.rng.random() >= options.sample_rate:
            return
        sink.offer(InferenceSample(
            request_id=request_id, project=options.project, model=runtime.name, version=slot_version,
            features=frame, prediction=out, latency_ms=(time.perf_counter() - started) * 1000.0, status=status,
            time=wall, deployment=options.deployment, replica=options.replica, role=role))

    async def shadow_copy(request_id: str, frame: Any, started: float, wall: float) -> None:
        slot = runtime.shadow
        if slot is None:
            return
        begin = time.perf_counter()
        try:
            out = await slot.predict(frame, metrics)
            status = 200
        except Exception:  # noqa: BLE001 - a shadow's failure never reaches the caller
            out, status = None, 500
        metrics.observe(protocol="shadow", status=status, role="shadow", version=slot.version,
                        seconds=time.perf_counter() - begin)
        sample(request_id, slot.version, "shadow", frame, out, status, started, wall)

    async def infer(request: Request, protocol: str) -> Response:
        started, wall = time.perf_counter(), time.time()
        request_id = request_id_of(request.headers.get("x-request-id"))
        v2 = protocol == "v2"
        slot = runtime.primary
        version, role = (slot.version if slot else 0), "primary"
        try:
            if auth is not None:
                await auth.check(request.headers.get("authorization"))
            if slot is None:
                raise Unavailable("no model is loaded yet")
            if v2 and request.path_params["name"] != runtime.name:
                raise NotFound(f"this endpoint serves model {runtime.name!r}")
            body = await _body(request, options.max_body_bytes)
            names = [c["name"] for c in slot.model.signature]
            if v2:
                frame, given_id = parse_v2(body, names)
                request_id = request_id_of(given_id) if given_id is not None else request_id
            else:
                frame = parse_invocation(body, request.headers.get("content-type", ""), names)
            slot, role = runtime.choose()
            version = slot.version
            frame = conform(frame, slot.model.signature)
            out = await slot.predict(frame, metrics)
        except CairnError as err:
            status = err.status
            metrics.observe(protocol=protocol, status=status, role=role, version=version,
                            seconds=time.perf_counter() - started)
            return JSONResponse(_error(err, v2), status_code=status,
                                headers={"X-Request-Id": request_id, "X-Model-Version": str(version)})
        except Exception as err:  # noqa: BLE001 - the model raised: a 500 that says so, never a hang
            metrics.observe(protocol=protocol, status=500, role=role, version=version,
                            seconds=time.perf_counter() - started)
            message = f"the model failed on this input: {type(err).__name__}: {err}"
            failure: dict[str, Any] = ({"error": message} if v2 else
                                       {"error": {"code": "model_error", "message": message, "details": {}}})
            return JSONResponse(failure, status_code=500, headers={"X-Request-Id": request_id,
                                                                "X-Model-Version": str(version)})
        if runtime.shadow is not None:  # a copy, bounded: a slow shadow loses copies, never slows answers
            if runtime.shadow.inflight < SHADOW_MAX_INFLIGHT:
                runtime.spawn(shadow_copy(request_id, frame, started, wall))
            else:
                metrics.shadow_dropped += 1
        metrics.observe(protocol=protocol, status=200, role=role, version=version,
                        seconds=time.perf_counter() - started)
        sample(request_id, version, role, frame, out, 200, started, wall)
        headers = {"X-Request-Id": request_id, "X-Model-Version": str(version)}
        if v2:
            return JSONResponse({"model_name": runtime.name, "model_version": str(version), "id": request_id,
                                 "outputs": [_v2_output(out)]}, headers=headers)
        return JSONResponse({"predictions": out}, headers=headers)

    async def invocations(request: Request) -> Response:
        return await infer(request, "mlflow")

    async def v2_infer(request: Request) -> Response:
        return await infer(request, "v2")

    async def v2_model(request: Request) -> Response:
        slot = runtime.primary
        headers = {"X-Request-Id": request_id_of(request.headers.get("x-request-id")),
                   "X-Model-Version": str(slot.version if slot else 0)}
        try:
            if auth is not None:
                await auth.check(request.headers.get("authorization"))
        except CairnError as err:
            return JSONResponse(_error(err, True), status_code=err.status, headers=headers)
        if slot is None or request.path_params["name"] != runtime.name:
            return JSONResponse({"error": f"this endpoint serves model {runtime.name!r}"}, status_code=404,
                                headers=headers)
        sig = slot.model.signature
        inputs = [{"name": c["name"], "datatype": {"double": "FP64", "float": "FP32", "long": "INT64",
                                                   "integer": "INT32", "boolean": "BOOL"}.get(c["type"], "BYTES"),
                   "shape": [-1]} for c in sig]
        return JSONResponse({"name": runtime.name, "versions": [str(slot.version)],
                             "platform": f"cairn-{slot.model.flavour}", "inputs": inputs,
                             "outputs": [{"name": "predictions", "datatype": "FP64", "shape": [-1]}]},
                            headers=headers)

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok", "pid": os.getpid()})

    async def readyz(request: Request) -> Response:
        slot = runtime.primary
        body = {"ready": slot is not None, "model": runtime.name, "version": slot.version if slot else None,
                "canary": ({"version": runtime.canary.version, "percent": runtime.canary_percent}
                           if runtime.canary else None),
                "shadow": {"version": runtime.shadow.version} if runtime.shadow else None,
                "last_error": runtime.last_error}
        return JSONResponse(body, status_code=200 if slot is not None else 503)

    async def prometheus(request: Request) -> Response:
        return PlainTextResponse(metrics.render(), media_type="text/plain; version=0.0.4")

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if on_startup is not None:
            await on_startup()
        try:
            yield
        finally:
            if on_shutdown is not None:
                await on_shutdown()
            await runtime.close()
            await sink.close()
            if auth is not None:
                await auth.http.aclose()

    routes = [Route("/invocations", invocations, methods=["POST"]),
              Route("/v2/models/{name}/infer", v2_infer, methods=["POST"]),
              Route("/v2/models/{name}/versions/{version}/infer", v2_infer, methods=["POST"]),
              Route("/v2/models/{name}", v2_model, methods=["GET"]),
              Route("/v2/health/live", healthz, methods=["GET"]), Route("/v2/health/ready", readyz, methods=["GET"]),
              Route("/healthz", healthz, methods=["GET"]), Route("/readyz", readyz, methods=["GET"]),
              Route("/metrics", prometheus, methods=["GET"])]
    return Starlette(routes=routes, lifespan=lifespan)

