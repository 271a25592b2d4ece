"""Gateway wiring: one public port in front of every service."""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

import httpx
from fastapi import FastAPI, Header, Query, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import Field

from cairn.kernel.errors import Forbidden, InvalidInput
from cairn.kernel.eventlog import EventLog
from cairn.kernel.http import error_body, install_error_handlers
from cairn.kernel.ids import NAME_RE, new_id
from cairn.kernel.settings import ServiceSettings
from cairn.services.gateway.events import event_stream
from cairn.services.gateway.proxy import ServiceProxy

log = logging.getLogger(__name__)


class GatewaySettings(ServiceSettings):
    """CAIRN_PORT (8080), CAIRN_HOST, CAIRN_NATS_URL and CAIRN_SERVICES (JSON name -> URL)."""

    port: int = Field(default=8080, ge=0, le=65535)
    services: dict[str, str] = Field(default_factory=dict)


def _is_loopback(host: str | None) -> bool:
    try:
        return host is not None and ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host in ("localhost", "testclient")


class LoopbackOnly:
    """Pure ASGI middleware: refuse non-loopback clients (until access control is configured),
    and give every request an id (``X-Request-Id``), echoed in the response."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        if not _is_loopback(client[0] if client else None):
            body = error_body("forbidden", "this gateway only accepts requests from loopback "
                              "until access control is configured")
            await JSONResponse(body, status_code=403)(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        request_id = (headers.get(b"x-request-id") or b"").decode("latin-1")[:200] or new_id()
        scope.setdefault("state", {})["request_id"] = request_id

        async def send_with_id(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", request_id.encode())]
            await send(message)

        await self.app(scope, receive, send_with_id)


def create_app(settings: GatewaySettings | None = None) -> FastAPI:
    settings = settings or GatewaySettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.log = await EventLog.open(settings.nats_url, name="cairn-gateway")
        app.state.proxy = ServiceProxy(settings.services)
        app.state.http = httpx.AsyncClient(timeout=5.0)
        try:
            yield
        finally:
            await app.state.proxy.close()
            await app.state.http.aclose()
            await app.state.log.close()

    app = FastAPI(title="cairn", version="0.1.0", lifespan=lifespan,
                  description="Cairn API gateway: /api/v1/<service>/... routes to the services.")
    install_error_handlers(app)

    app.add_middleware(LoopbackOnly)

    @app.get("/healthz", tags=["ops"])
    async def healthz(request: Request) -> JSONResponse:
        """200 only when the event log and every service are ready."""
        report = await _health(request.app, settings)
        return JSONResponse(report, status_code=200 if report["ready"] else 503)

    @app.get("/api/v1/status", tags=["ops"])
    async def status(request: Request) -> dict[str, Any]:
        """Each service's health, the stream's last sequence and each projection's lag."""
        return await _health(request.app, settings)

    @app.get("/api/v1/events/stream", tags=["events"])
    async def stream(
        request: Request,
        project: Annotated[str | None, Query(description="only this project's events")] = None,
        types: Annotated[str | None, Query(description="comma-separated globs, e.g. run.*,model_version.*")] = None,
        since: Annotated[int | None, Query(ge=0, description="resume after this stream sequence")] = None,
        last_event_id: Annotated[str | None, Header()] = None,
    ) -> StreamingResponse:
        """Server-sent events, resumable with Last-Event-ID (the stream sequence)."""
        if project is not None and not NAME_RE.match(project):
            raise InvalidInput(f"project {project!r} is not a valid project name", details={"field": "project"})
        after = since
        if last_event_id:
            if not last_event_id.isdigit():
                raise InvalidInput("Last-Event-ID must be a stream sequence number",
                                   details={"field": "Last-Event-ID"})
            after = int(last_event_id)
        frames = event_stream(request.app.state.log, project=project, types=types, after=after)
        return StreamingResponse(frames, media_type="text/event-stream",
                                 headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})

    @app.api_route("/api/v1/{service}/{path:path}", methods=["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"],
                   include_in_schema=False)
    async def route(service: str, path: str, request: Request) -> StreamingResponse:
        if path.startswith("admin/") and not _is_loopback(request.client.host if request.client else None):
            raise Forbidden("admin routes are for site admins")
        return await request.app.state.proxy.forward(
            service, path, request, actor="local", request_id=request.state.request_id)

    _merge_openapi(app, settings)
    return app


async def _health(app: FastAPI, settings: GatewaySettings) -> dict[str, Any]:
    event_log: EventLog = app.state.log
    report: dict[str, Any] = {"ready": True, "event_log": {}, "services": {}}
    try:
        last = await event_log.last_sequence()
        report["event_log"] = {"connected": True, "stream": event_log.stream, "last_seq": last}
    except Exception as err:  # noqa: BLE001 - health reports every failure
        report["ready"] = False
        report["event_log"] = {"connected": False, "error": str(err)}
        last = None

    async def probe(name: str, url: str) -> tuple[str, dict[str, Any]]:
        try:
            resp = await app.state.http.get(f"{url}/healthz", timeout=2.0)
            body = resp.json()
            ready = resp.status_code == 200 and bool(body.get("ready"))
            applied = body.get("applied_seq")
            lag = (last - applied) if (last is not None and applied is not None) else None
            return name, {"ready": ready, "url": url, "applied_seq": applied, "lag": lag,
                          "error": body.get("error")}
        except (httpx.HTTPError, ValueError) as err:
            return name, {"ready": False, "url": url, "error": f"{type(err).__name__}: {err}"}

    results = await asyncio.gather(*(probe(n, u) for n, u in settings.services.items()))
    for name, item in results:
        report["services"][name] = item
        report["ready"] = report["ready"] and item["ready"]
    return report


def _merge_openapi(app: FastAPI, settings: GatewaySettings) -> None:
    """Serve one OpenAPI document: the gateway's routes plus every service's, prefixed."""
    base_openapi = app.openapi

    def merged() -> dict[str, Any]:
        if app.openapi_schema and app.state.__dict__.get("openapi_complete"):
            return app.openapi_schema
        schema = json.loads(json.dumps(base_openapi()))
        complete = True
        for name, url in settings.services.items():
            try:
                sub = httpx.get(f"{url}/openapi.json", timeout=2.0).json()
            except (httpx.HTTPError, ValueError):
                complete = False
                continue
            for path, item in sub.get("paths", {}).items():
                if path in ("/healthz",) or path.startswith("/admin"):
                    continue
                for op in item.values():
                    if isinstance(op, dict) and "operationId" in op:
                        op["operationId"] = f"{name}_{op['operationId']}"
                schema["paths"][f"/api/v1/{name}{path}"] = item
            for kind, entries in sub.get("components", {}).items():
                schema.setdefault("components", {}).setdefault(kind, {}).update(entries)
        app.openapi_schema = schema
        app.state.openapi_complete = complete
        return schema

    app.openapi = merged  # type: ignore[method-assign]
