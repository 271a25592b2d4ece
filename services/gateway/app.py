"""Gateway wiring: the one public port in front of every service.

Authenticates every request (bearer tokens, or the web UI's session cookie), authorizes it by project role, routes
``/api/v1/<service>/...`` to the services, and serves tokens, members, audit, webhooks, health,
status, the event stream and the web UI's files.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import httpx
from fastapi import Depends, FastAPI, Header, Query, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import Field, field_validator

from cairn.kernel import dns, jobtoken
from cairn.kernel.commands import CommandContext
from cairn.kernel.egress import Egress
from cairn.kernel.errors import InvalidInput, NotFound
from cairn.kernel.eventlog import EventLog
from cairn.kernel.identity import INTERNAL_KIND, SIGNED_IN, Signer
from cairn.kernel.identity import Caller as Identity
from cairn.kernel.ids import NAME_RE, new_id
from cairn.kernel.sealing import seal_key
from cairn.kernel.service import ServiceRuntime, create_service_app
from cairn.kernel.settings import ServiceSettings
from cairn.protocol import (
    ACCESS_SEQUENCE_HEADER,
    H_CAIRN_METRICS_SEQ,
    H_CAIRN_MIN_METRICS_SEQ,
    H_CAIRN_MIN_SEQ,
    H_CAIRN_SEQ,
)
from cairn.services.gateway import domain
from cairn.services.gateway.api import router as access_router
from cairn.services.gateway.apidocs import serve_api_docs
from cairn.services.gateway.auth import (
    JOB_KIND,
    TOKEN_PREFIX,
    Principal,
    authenticate_request,
    hash_secret,
    new_token,
)
from cairn.services.gateway.cluster import router as cluster_router
from cairn.services.gateway.events import event_stream
from cairn.services.gateway.limits import body_limits, tiered_limits
from cairn.services.gateway.mlflow import router as mlflow_router
from cairn.services.gateway.mlflow.traces_routes import router as mlflow_traces_router
from cairn.services.gateway.otlp import router as otlp_router
from cairn.services.gateway.paths import PathGuard
from cairn.services.gateway.projection import AGGREGATES, projection
from cairn.services.gateway.proxy import ServiceProxy
from cairn.services.gateway.replicas import service_urls
from cairn.services.gateway.sequences import CallerSequences
from cairn.services.gateway.sessions import SESSION_COOKIE, SessionStore, session_principal
from cairn.services.gateway.sessions import router as sessions_router
from cairn.services.gateway.store import GatewayStore
from cairn.services.gateway.subscribers import router as subscribers_router
from cairn.services.gateway.webhooks import WebhookDispatcher
from cairn.services.gateway.webui import serve_web_app

log = logging.getLogger(__name__)
ADMIN_TOKEN_FILE = "admin.token"
SIGNED_IN_ROUTE = {"x-cairn-role": SIGNED_IN}  # routes that authenticate through their Caller parameter
# a route without a token: the request proves itself (a code host's push hook: its signature or token)
OPEN_ROUTE = {"x-cairn-role": "open"}
GIT_HOOK_PATH = "/api/v1/pipelines/hooks/git"


class GatewaySettings(ServiceSettings):
    """CAIRN_PORT (8080), CAIRN_HOST, CAIRN_NATS_URL, CAIRN_DATA_DIR, CAIRN_SERVICES (JSON name -> URL, or
    name -> list of URLs: the service's replicas, round robin; services/gateway/replicas.py),
    CAIRN_RATE_LIMIT (requests/s per token, 0 = off), CAIRN_RATE_BURST, CAIRN_RATE_LIMIT_USER and
    CAIRN_RATE_BURST_USER (per user, over all their tokens and jobs; default twice the token's, 0 = off),
    CAIRN_RATE_LIMIT_SERVICE / CAIRN_RATE_BURST_SERVICE (service accounts) and CAIRN_RATE_LIMIT_ADMIN /
    CAIRN_RATE_BURST_ADMIN (site admins), each per token, default five times the users' (limits.tiered_limits),
    CAIRN_WEBHOOKS_ALLOW_PRIVATE,
    CAIRN_WEBHOOK_ALLOW_NETWORKS (JSON list of CIDRs allowed besides globally routable addresses),
    CAIRN_WEBHOOK_DNS_SERVER (address[:port] of a DNS server for webhook hosts; default: the system's),
    CAIRN_WEBHOOK_ATTEMPTS, CAIRN_WEBHOOK_BACKOFF_S, CAIRN_WEBHOOK_TIMEOUT_S (per attempt, lookup included),
    CAIRN_SESSION_IDLE_S and CAIRN_SESSION_MAX_S (web sessions' idle and absolute expiry: 12 h, 7 days),
    CAIRN_GATEWAY_REPLICAS (how many gateways share the rate limits: each enforces its share, limits.py),
    CAIRN_NATS_MONITOR_URLS (JSON list of the NATS servers' monitoring URLs, for ``cairn status``; optional),
    CAIRN_UI_DIST (the web UI's build to serve; default: the package's ``cairn/ui/dist``)."""

    port: int = Field(default=8080, ge=0, le=65535)
    services: dict[str, str | list[str]] = Field(default_factory=dict)
    rate_limit: float = Field(default=1000.0, ge=0)
    rate_burst: float = Field(default=2000.0, ge=0)
    rate_limit_user: float | None = Field(default=None, ge=0)
    rate_burst_user: float | None = Field(default=None, ge=0)
    rate_limit_service: float | None = Field(default=None, ge=0)
    rate_burst_service: float | None = Field(default=None, ge=0)
    rate_limit_admin: float | None = Field(default=None, ge=0)
    rate_burst_admin: float | None = Field(default=None, ge=0)
    webhooks_allow_private: bool = False
    webhook_attempts: int = Field(default=6, ge=1, le=20)
    webhook_backoff_s: float = Field(default=1.0, ge=0.0)
    webhook_timeout_s: float = Field(default=10.0, gt=0)
    webhook_allow_networks: list[str] = Field(default_factory=list)
    webhook_dns_server: str = ""
    session_idle_s: float = Field(default=43200.0, gt=0)
    session_max_s: float = Field(default=604800.0, gt=0)
    gateway_replicas: int = Field(default=1, ge=1)
    nats_monitor_urls: list[str] = Field(default_factory=list)  # for cairn status (gateway/cluster.py)
    ui_dist: Path | None = None

    @field_validator("webhook_allow_networks")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for network in value:
            ipaddress.ip_network(network, strict=False)  # ValueError names the bad one
        return value

    @field_validator("webhook_dns_server")
    @classmethod
    def _dns_server(cls, value: str) -> str:
        if value:
            dns.parse_server(value)
        return value


def preset_admin_token(path: Path) -> tuple[str, str, str] | None:
    """(token id, token, secret hash) of a site-admin token that a deployment put in
    ``<data dir>/admin.token`` before the platform's first start (so that agents on other machines
    can be given it without fetching anything back), or None when there is none."""
    if not path.exists():
        return None
    token = path.read_text().strip()
    token_id, sep, secret = token.removeprefix(TOKEN_PREFIX).partition("_")
    if not token.startswith(TOKEN_PREFIX) or not sep or not token_id or len(secret) < 32:
        return None  # not a token: made anew and written over, as before
    return token_id, token, hash_secret(secret)


async def bootstrap_admin_token(rt: ServiceRuntime, data_dir: Path) -> None:
    """On first start (no token anywhere), create a site-admin token for user ``admin`` and write
    it to ``<data dir>/admin.token``, readable only by its owner. No default passwords."""
    await rt.runner.wait_for(await rt.log.last_sequence(), timeout=120)
    store: GatewayStore = rt.store  # type: ignore[assignment]
    if store.any_token():
        return
    path = data_dir / ADMIN_TOKEN_FILE
    preset = preset_admin_token(path)
    token_id, token, secret_hash = preset or new_token()
    # a token written by the deployment (infra/terraform/modules/hosts) before the first start: every
    # gateway registers the same one, so the same idempotency key makes it one event
    key = f"admin-bootstrap-{token_id}" if preset else None
    await rt.commands.execute(CommandContext(actor="cairn-up", idempotency_key=key), project=domain.SITE, aggregate="user",
                              aggregate_id="admin", decide=lambda s: domain.create_token(
                                  s, user="admin", token_id=token_id, secret_hash=secret_hash, kind="user",
                                  site_admin=True, expires_at=None, description="first site admin (cairn up)"))
    if preset:
        return
    data_dir.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(token + "\n")
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, path)
    log.info("first site-admin token written to %s", path)


async def caller(request: Request, authorization: Annotated[str | None, Header()] = None) -> Principal:
    """Authenticate the bearer token (or, without one, the web session's cookie, CSRF-checked on
    writes) and count the request against the token's rate."""
    if authorization is None and (session_id := request.cookies.get(SESSION_COOKIE)):
        return await session_principal(request, session_id)
    return authenticate_request(request, authorization)


Caller = Annotated[Principal, Depends(caller)]


async def start_gateway(app: FastAPI, runtime: ServiceRuntime) -> None:
    """The gateway's parts next to its projection: the job-token key, the proxy to the services,
    the first site-admin token, and the webhooks' dispatcher."""
    settings: GatewaySettings = app.state.settings
    app.state.job_key = await jobtoken.shared_key(runtime.log.js, replicas=runtime.log.replicas)
    app.state.seal_key = await seal_key(runtime.log.js, replicas=runtime.log.replicas)  # webhook secrets
    app.state.proxy = ServiceProxy(settings.services, runtime.signer)
    app.state.sequences = CallerSequences()
    app.state.metrics_sequences = CallerSequences()  # the same for the metrics stream's sequences
    runtime.defer(app.state.proxy.close)
    app.state.http = httpx.AsyncClient(timeout=5.0)
    runtime.defer(app.state.http.aclose)
    app.state.sessions = await SessionStore.open(runtime.log.js, replicas=runtime.log.replicas,
                                                 idle_s=settings.session_idle_s, max_s=settings.session_max_s)
    await bootstrap_admin_token(runtime, settings.data_dir)
    dispatcher = WebhookDispatcher(runtime.log, runtime.store, runtime.commands, projection=runtime.runner,
                                   data_dir=settings.data_dir, egress=app.state.egress,
                                   attempts=settings.webhook_attempts, backoff_s=settings.webhook_backoff_s,
                                   replica=settings.replica)
    dispatcher.queues.seal_key = app.state.seal_key
    await dispatcher.start()
    runtime.defer(dispatcher.stop)
    await dispatcher.elect(runtime)  # every gateway queues; the gateway.webhooks lease holder delivers
    app.state.webhooks = dispatcher


def create_app(settings: GatewaySettings | None = None) -> FastAPI:
    settings = settings or GatewaySettings()
    app = create_service_app(
        "gateway",
        settings,
        make_store=lambda s: GatewayStore(s.read_model_dir("gateway") / "gateway.sqlite3"),
        handler=projection(),
        routers=[],
        description="Cairn API: /api/v1/<service>/... routes to the services. "
                    "Send 'Authorization: Bearer cairn_...' with every request.",
        projection_aggregates=AGGREGATES,
        body_limits=body_limits(settings),
        on_start=[start_gateway],
        public=True,  # it authenticates bearer tokens itself, route by route
        admin_prefix="/api/v1/gateway",
        admin_dependencies=[Depends(caller)],
    )
    app.state.settings = settings
    app.add_middleware(PathGuard)  # paths are checked before any routing
    app.add_middleware(RequestId)
    app.state.buckets = tiered_limits(settings)  # limits.TieredLimits: users, service accounts, site admins
    app.state.egress = _egress(settings)  # checks new webhooks' URLs and sends their deliveries

    @app.get("/healthz", tags=["ops"])
    async def healthz(request: Request) -> JSONResponse:
        """200 only when the event log and every service are ready (no token needed)."""
        report = await _health(request.app, settings)
        return JSONResponse({"ready": report["ready"]}, status_code=200 if report["ready"] else 503)

    @app.get("/api/v1/status", tags=["ops"], openapi_extra=SIGNED_IN_ROUTE)
    async def status(request: Request, _: Caller) -> dict[str, Any]:
        """Each service's health, the stream's last sequence and each projection's lag."""
        return await _health(request.app, settings)

    @app.get("/api/v1/whoami", tags=["access"], openapi_extra=SIGNED_IN_ROUTE)
    def whoami(principal: Caller) -> dict[str, Any]:
        return {"user": principal.user, "token_id": principal.token_id, "kind": principal.kind,
                "site_admin": principal.site_admin, "projects": principal.roles}

    @app.get("/api/v1/events/stream", tags=["events"], openapi_extra=SIGNED_IN_ROUTE)
    async def stream(
        request: Request,
        principal: Caller,
        project: Annotated[str | None, Query(description="only this project's events")] = None,
        types: Annotated[str | None, Query(description="comma-separated globs, e.g. run.*,model_version.*")] = None,
        since: Annotated[int | None, Query(ge=0, description="resume after this stream sequence")] = None,
        last_event_id: Annotated[str | None, Header()] = None,
    ) -> StreamingResponse:
        """Server-sent events you may see, resumable with Last-Event-ID (the stream sequence)."""
        if project is not None:
            if not NAME_RE.match(project):
                raise InvalidInput(f"project {project!r} is not a valid project name", details={"field": "project"})
            principal.require(project, "viewer")
        after = since
        if last_event_id:
            if not last_event_id.isdigit():
                raise InvalidInput("Last-Event-ID must be a stream sequence number",
                                   details={"field": "Last-Event-ID"})
            after = int(last_event_id)
        store = request.app.state.runtime.store

        def member_now(p: str) -> bool:  # memberships as they are now, for as long as the stream lasts
            return p in store.roles_of(principal.user)

        visible: Callable[[str], bool] | None = None
        if principal.kind == JOB_KIND:
            visible = principal.roles.__contains__  # its one project
        elif not principal.site_admin:
            visible = member_now
        frames = event_stream(request.app.state.runtime.log, project=project, types=types, after=after, visible=visible)
        return StreamingResponse(frames, media_type="text/event-stream",
                                 headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})

    app.include_router(access_router, dependencies=[Depends(caller)])
    app.include_router(cluster_router, dependencies=[Depends(caller)])  # cairn status: docs/cluster.md
    app.include_router(subscribers_router, dependencies=[Depends(caller)])  # NATS event subscribers: docs/cluster.md
    app.include_router(sessions_router)  # sign in / out of the web UI: docs/ui.md
    app.include_router(mlflow_traces_router)  # MLflow's trace API (v3, trace artifacts): docs/traces.md
    app.include_router(otlp_router)  # OTLP/HTTP spans at /v1/traces, MLflow's /version: docs/traces.md
    app.include_router(mlflow_router)  # MLflow-compatible API: /api/2.0/mlflow/..., /mlflow/<project>/...

    @app.post(GIT_HOOK_PATH, tags=["pipelines"], openapi_extra=OPEN_ROUTE)
    async def git_hook(request: Request) -> Response:
        """Code hosts' push webhooks (GitHub, GitLab). A code host sends no Cairn token, so this
        route takes none; it forwards the raw body and the host's headers to the pipelines
        service as the gateway itself, and that service verifies the hook's signature (or GitLab
        token) with each registered definition's secret: a request that no secret verifies is a
        401 and starts nothing (docs/pipelines.md, "In the service")."""
        gateway = Identity("service:gateway", "gateway", INTERNAL_KIND, True, {}, "gateway")
        return await request.app.state.proxy.forward("pipelines", "hooks/git", request, caller=gateway,
                                                     request_id=request.state.request_id)

    @app.api_route("/api/v1/{service}/{path:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"],
                   include_in_schema=False)
    async def route(service: str, path: str, request: Request, principal: Caller) -> Response:
        """Forward to the service as the signed caller; the service checks the role its route needs."""
        request.app.state.proxy.replicas_of(service)  # 404 for an unknown service before anything else
        sequences: CallerSequences = request.app.state.sequences
        points: CallerSequences = request.app.state.metrics_sequences
        metrics = service == "metrics"
        response = await request.app.state.proxy.forward(
            service, path, request, caller=principal, request_id=request.state.request_id,
            min_seq=sequences.floor(principal, request.headers.get(H_CAIRN_MIN_SEQ)),
            min_metrics_seq=points.floor(principal, request.headers.get(H_CAIRN_MIN_METRICS_SEQ)) if metrics else 0)
        sequences.saw(principal, response.headers.get(H_CAIRN_SEQ))
        if metrics:
            points.saw(principal, response.headers.get(H_CAIRN_METRICS_SEQ))
        access_seq = response.headers.get(ACCESS_SEQUENCE_HEADER, "")
        if access_seq.isdigit():  # the caller's access changed: answer once our authorization shows it
            await request.app.state.runtime.runner.wait_for(int(access_seq))
        return response

    _serve_openapi(app, settings, app.state.signer)
    serve_api_docs(app)  # /docs and /redoc from local files, the MLflow link page
    serve_web_app(app, settings.ui_dist)  # last: its fallback takes any GET path left over
    return app


def _egress(settings: GatewaySettings) -> Egress:
    return Egress(allow_private=settings.webhooks_allow_private, allow_networks=settings.webhook_allow_networks,
                  dns_server=settings.webhook_dns_server, timeout_s=settings.webhook_timeout_s)


class RequestId:
    """Pure ASGI middleware: every request gets an id (``X-Request-Id``), echoed in the response."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        request_id = (headers.get(b"x-request-id") or b"").decode("latin-1")[:200] or new_id()
        scope.setdefault("state", {})["request_id"] = request_id

        async def send_with_id(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), (b"x-request-id", request_id.encode())]
            await send(message)

        await self.app(scope, receive, send_with_id)


async def _health(app: FastAPI, settings: GatewaySettings) -> dict[str, Any]:
    event_log: EventLog = app.state.runtime.log
    report: dict[str, Any] = {"ready": True, "event_log": {}, "services": {}}
    try:
        last = await event_log.last_sequence()
        report["event_log"] = {"connected": True, "stream": event_log.stream, "last_seq": last}
    except Exception as err:  # noqa: BLE001 - health reports every failure
        report["ready"] = False
        report["event_log"] = {"connected": False, "error": str(err)}
        last = None
    runner = app.state.runtime.runner
    report["services"]["gateway"] = {"ready": runner.last_error is None, "applied_seq": runner.applied,
                                     "lag": (last - runner.applied) if last is not None else None,
                                     "url": None, "error": runner.last_error,
                                     "parked": runner.parked_count()}

    async def probe(name: str, url: str) -> tuple[str, dict[str, Any]]:
        try:
            resp = await app.state.http.get(f"{url}/healthz", timeout=2.0)
            body = resp.json()
            ready = resp.status_code == 200 and bool(body.get("ready"))
            applied = body.get("applied_seq")
            lag = (last - applied) if (last is not None and applied is not None) else None
            item = {"ready": ready, "url": url, "applied_seq": applied, "lag": lag,
                    "error": body.get("error"), "parked": body.get("parked")}
            if "written_seq" in body:  # a metrics replica: how far it wrote the metrics stream
                item["written_seq"] = body["written_seq"]
            return name, item
        except (httpx.HTTPError, ValueError) as err:
            return name, {"ready": False, "url": url, "error": f"{type(err).__name__}: {err}"}

    urls = service_urls(settings.services)
    results = await asyncio.gather(*(probe(n, u) for n, listed in urls.items() for u in listed))
    for name, item in results:
        if len(urls[name]) == 1:
            report["services"][name] = item
            continue
        # replicas: the service is ready while one of them is (the proxy skips the others)
        entry = report["services"].setdefault(name, {"replicas": []})
        entry["replicas"].append(item)
        best = next((r for r in entry["replicas"] if r["ready"]), entry["replicas"][0])
        entry.update({k: v for k, v in best.items() if k != "replicas"})
    report["ready"] = report["ready"] and all(s["ready"] for s in report["services"].values())
    return report


class OpenApiDocument:
    """One OpenAPI document: the gateway's routes plus every service's, prefixed. Each service's
    part is fetched asynchronously (all at once, 2 s each) and kept once fetched; a service that
    does not answer is listed under ``x-cairn-unavailable`` and asked again at most every
    ``retry_s``, so a stopped service slows no request, not even this one for long."""

    def __init__(self, app: FastAPI, settings: GatewaySettings, signer: Signer, retry_s: float = 10.0) -> None:
        self.base = app.openapi()  # the gateway's own routes: computed once, they do not change
        self.settings = settings
        self.signer = signer
        self.retry_s = retry_s
        self.parts: dict[str, dict[str, Any]] = {}
        self.failed_at: dict[str, float] = {}
        self._merged: dict[str, Any] | None = None  # made again only when a part arrives

    async def fetch(self, http: httpx.AsyncClient) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        due = [(name, urls[0]) for name, urls in service_urls(self.settings.services).items() if name not in self.parts
               and loop.time() - self.failed_at.get(name, -self.retry_s) >= self.retry_s]

        async def one(name: str, url: str) -> None:
            try:
                resp = await http.get(f"{url}/openapi.json", timeout=2.0, headers=self.signer.internal())
                resp.raise_for_status()
                self.parts[name] = resp.json()
                self._merged = None
            except (httpx.HTTPError, ValueError):
                self.failed_at[name] = loop.time()

        await asyncio.gather(*(one(name, url) for name, url in due))
        if self._merged is None:
            self._merged = self.merged()
        return self._merged

    def merged(self) -> dict[str, Any]:
        schema = json.loads(json.dumps(self.base))
        for name, sub in self.parts.items():
            for path, item in json.loads(json.dumps(sub.get("paths", {}))).items():
                if path in ("/healthz",) or path.startswith("/admin"):
                    continue
                if f"/api/v1/{name}{path}" in schema["paths"]:
                    continue  # the gateway answers that path itself (the open git hook): its document wins
                for op in item.values():
                    if isinstance(op, dict) and "operationId" in op:
                        op["operationId"] = f"{name}_{op['operationId']}"
                schema["paths"][f"/api/v1/{name}{path}"] = item
            for kind, entries in sub.get("components", {}).items():
                schema.setdefault("components", {}).setdefault(kind, {}).update(entries)
        schema.setdefault("components", {}).setdefault("securitySchemes", {})["bearer"] = {
            "type": "http", "scheme": "bearer"}
        schema["security"] = [{"bearer": []}]
        missing = sorted(set(self.settings.services) - set(self.parts))
        if missing:
            schema["x-cairn-unavailable"] = missing
        return schema


def _serve_openapi(app: FastAPI, settings: GatewaySettings, signer: Signer) -> None:
    """Replace FastAPI's synchronous /openapi.json (it would fetch the services' documents on the
    event loop) with an asynchronous one over :class:`OpenApiDocument`; /docs reads it as before."""
    app.router.routes = [r for r in app.router.routes if getattr(r, "path", None) != app.openapi_url]
    document: list[OpenApiDocument] = []

    @app.get(app.openapi_url or "/openapi.json", include_in_schema=False)
    async def openapi(request: Request) -> JSONResponse:
        if not document:
            document.append(OpenApiDocument(app, settings, signer))
        return JSONResponse(await document[0].fetch(request.app.state.http))


__all__ = ["GatewaySettings", "NotFound", "create_app"]
