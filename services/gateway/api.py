"""The gateway's own routes: tokens, members, audit, webhooks."""

from __future__ import annotations

import secrets
from datetime import datetime, timezone
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from cairn.kernel.commands import CommandContext
from cairn.kernel.errors import Forbidden, InvalidInput, NotFound
from cairn.kernel.identity import ACCOUNT, ADMIN, VIEWER, current_caller, requires
from cairn.kernel.ids import FREE_TEXT_PATTERN, PROJECT_NAME_PATTERN, URL_PATTERN, new_id
from cairn.kernel.sealing import seal
from cairn.kernel.telemetry import current_traceparent
from cairn.services.gateway import domain
from cairn.services.gateway.audit import audit_page, audit_page_desc
from cairn.services.gateway.auth import Principal, new_token

router = APIRouter(prefix="/api/v1")


Caller = Annotated[Principal, Depends(current_caller)]


def _ctx(request: Request, caller: Principal) -> CommandContext:
    return CommandContext(actor=caller.actor, correlation_id=request.state.request_id,
                          idempotency_key=request.headers.get("idempotency-key"),
                          traceparent=current_traceparent())


ProjectName = Annotated[str, Path(pattern=PROJECT_NAME_PATTERN, description="project name")]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TokenCreate(Strict):
    user: str | None = Field(default=None, pattern=PROJECT_NAME_PATTERN, description="whose token; default: yours")
    kind: Literal["user", "service"] = "user"
    site_admin: bool = False
    expires_in_days: float | None = Field(
        default=None, gt=0, le=3650,
        description="default: never; at most until the token you use expires")
    description: str = Field(default="", max_length=500, pattern=FREE_TEXT_PATTERN)


class MemberAdd(Strict):
    user: str = Field(pattern=PROJECT_NAME_PATTERN, description="user name: 1-63 of a-z, 0-9, '-', '_'")
    role: Literal["viewer", "editor", "admin"]


class WebhookCreate(Strict):
    url: str = Field(min_length=8, max_length=2000, pattern=URL_PATTERN)
    types: list[str] = Field(min_length=1, max_length=50)


# --- tokens ------------------------------------------------------------------------------------

@router.post("/tokens", status_code=201, tags=["access"], **requires(ACCOUNT))
async def create_token(body: TokenCreate, request: Request, caller: Caller) -> dict[str, Any]:
    """Create a token (shown once). Site admins may create tokens for anyone, service accounts
    and other site admins; users create tokens for themselves. A token never outlives the token
    that creates it: asking for a later expiry (or none) with an expiring token is a 422 that
    says the latest allowed."""
    user = body.user or caller.user
    if (user != caller.user or body.site_admin or body.kind != caller.kind) and not caller.site_admin:
        raise Forbidden("only a site admin can create tokens for others, service accounts or site admins")
    rt = request.app.state.runtime
    minted_by = rt.store.token(caller.token_id)
    expires = domain.token_expiry(datetime.now(timezone.utc), body.expires_in_days,
                                  minted_by["expires_at"] if minted_by else None)
    token_id, token, secret_hash = new_token()
    await rt.commands.execute(_ctx(request, caller), project=domain.SITE, aggregate="user", aggregate_id=user,
                              decide=lambda s: domain.create_token(
                                  s, user=user, token_id=token_id, secret_hash=secret_hash, kind=body.kind,
                                  site_admin=body.site_admin, expires_at=expires, description=body.description,
                                  parent_token_id=caller.token_id))
    return {**rt.store.token(token_id), "token": token, "secret_hash": None}


@router.get("/tokens", tags=["access"], **requires(ACCOUNT))
def list_tokens(request: Request, caller: Caller, user: str | None = None) -> dict[str, Any]:
    """Tokens (never their secrets): all for site admins, else your own."""
    if not caller.site_admin:
        if user not in (None, caller.user):
            raise Forbidden("only a site admin can list other users' tokens")
        user = caller.user
    return {"tokens": request.app.state.runtime.store.tokens(user)}


@router.delete("/tokens/{token_id}", tags=["access"], **requires(ACCOUNT))
async def revoke_token(token_id: str, request: Request, caller: Caller) -> dict[str, Any]:
    rt = request.app.state.runtime
    record = rt.store.token(token_id)
    if record is None or (record["user"] != caller.user and not caller.site_admin):
        raise NotFound(f"no token {token_id!r}")
    await rt.commands.execute(_ctx(request, caller), project=domain.SITE, aggregate="user",
                              aggregate_id=record["user"],
                              decide=lambda s: domain.revoke_token(s, user=record["user"], token_id=token_id))
    return {"token_id": token_id, "revoked": True}


# --- members -----------------------------------------------------------------------------------

@router.get("/projects/{project}/members", tags=["access"], **requires(VIEWER))
def list_members(project: ProjectName, request: Request, caller: Caller) -> dict[str, Any]:
    return {"members": request.app.state.runtime.store.members(project)}


@router.post("/projects/{project}/members", tags=["access"], **requires(ADMIN))
async def add_member(project: ProjectName, body: MemberAdd, request: Request, caller: Caller) -> dict[str, Any]:
    """Give a user a role in a project (project admins and site admins)."""
    rt = request.app.state.runtime
    await rt.commands.execute(_ctx(request, caller), project=project, aggregate="membership", aggregate_id=project,
                              decide=lambda s: domain.add_member(s, project=project, user=body.user, role=body.role))
    return {"members": rt.store.members(project)}


@router.delete("/projects/{project}/members/{user}", tags=["access"], **requires(ADMIN))
async def remove_member(project: ProjectName, user: str, request: Request, caller: Caller) -> dict[str, Any]:
    rt = request.app.state.runtime
    await rt.commands.execute(_ctx(request, caller), project=project, aggregate="membership", aggregate_id=project,
                              decide=lambda s: domain.remove_member(s, project=project, user=user))
    return {"members": rt.store.members(project)}


# --- audit -------------------------------------------------------------------------------------

@router.get("/audit", tags=["audit"], **requires(ADMIN))
async def audit(request: Request, caller: Caller,
                project: Annotated[str | None, Query(pattern=PROJECT_NAME_PATTERN)] = None, actor: str | None = None,
                type: str | None = Query(default=None, description="event type globs, comma-separated"),
                since: str | None = None, cursor: Annotated[int, Query(ge=0)] = 0,
                limit: Annotated[int, Query(ge=1, le=1000)] = 100,
                order: Annotated[Literal["asc", "desc"], Query(description="asc: oldest first after cursor; "
                                                                         "desc: newest first before before")] = "asc",
                before: Annotated[int | None, Query(ge=1, description="desc: the previous page's next_cursor")] = None,
                ) -> dict[str, Any]:
    """Who did what and when, from the log: project admins for their projects, site admins for all
    (without ``project``). Oldest first by default (``cursor``: after that sequence); ``order=desc``
    pages backwards from the newest (``before``: below that sequence)."""
    if order == "desc":
        if cursor:
            raise InvalidInput("cursor pages forward (order=asc); with order=desc pass next_cursor as before",
                               details={"field": "cursor"})
        return await audit_page_desc(request.app.state.runtime.log, project=project, actor=actor, types=type,
                                     since=since, before=before, limit=limit)
    if before is not None:
        raise InvalidInput("before pages backwards: use it with order=desc", details={"field": "before"})
    return await audit_page(request.app.state.runtime.log, project=project, actor=actor, types=type, since=since,
                            after=cursor, limit=limit)


# --- webhooks ----------------------------------------------------------------------------------

@router.post("/projects/{project}/webhooks", status_code=201, tags=["webhooks"], **requires(ADMIN))
async def create_webhook(project: ProjectName, body: WebhookCreate, request: Request, caller: Caller) -> dict[str, Any]:
    """Subscribe a URL to a project's events; the response shows the signing secret once."""
    rt = request.app.state.runtime
    await request.app.state.egress.check_url(body.url)  # 422 naming the address and why, if refused
    webhook_id, secret = new_id(), "whsec_" + secrets.token_urlsafe(32)
    sealed = seal(request.app.state.seal_key, secret, webhook_id)  # project subscribers read the event
    await rt.commands.execute(_ctx(request, caller), project=project, aggregate="webhook", aggregate_id=webhook_id,
                              decide=lambda s: domain.create_webhook(
                                  s, webhook_id=webhook_id, url=body.url, types=body.types, secret=sealed))
    created = next(h for h in rt.store.webhooks(project) if h["id"] == webhook_id)
    return {**created, "secret": secret}


@router.get("/projects/{project}/webhooks", tags=["webhooks"], **requires(ADMIN))
def list_webhooks(project: ProjectName, request: Request, caller: Caller) -> dict[str, Any]:
    dispatcher = request.app.state.webhooks
    return {"webhooks": [{**hook, "pending": dispatcher.pending(hook["id"])}
                         for hook in request.app.state.runtime.store.webhooks(project)]}


def _hook(request: Request, project: str, webhook_id: str) -> dict[str, Any]:
    hook = request.app.state.runtime.store.webhook(webhook_id)
    if hook is None or hook["project"] != project or hook["deleted"]:
        raise NotFound(f"webhook {webhook_id!r} does not exist in project {project!r}")
    return hook


@router.delete("/projects/{project}/webhooks/{webhook_id}", status_code=204, tags=["webhooks"], **requires(ADMIN))
async def delete_webhook(project: ProjectName, webhook_id: str, request: Request, caller: Caller) -> Response:
    _hook(request, project, webhook_id)
    await request.app.state.runtime.commands.execute(
        _ctx(request, caller), project=project, aggregate="webhook", aggregate_id=webhook_id,
        decide=lambda s: domain.delete_webhook(s, webhook_id=webhook_id))
    return Response(status_code=204)


@router.get("/projects/{project}/webhooks/{webhook_id}/dead-letters", tags=["webhooks"], **requires(ADMIN))
def dead_letters(project: ProjectName, webhook_id: str, request: Request, caller: Caller) -> dict[str, Any]:
    _hook(request, project, webhook_id)
    return {"dead_letters": request.app.state.runtime.store.dead_letters(webhook_id)}


@router.get("/projects/{project}/webhooks/{webhook_id}/deliveries", tags=["webhooks"], **requires(ADMIN))
def deliveries(project: ProjectName, webhook_id: str, request: Request, caller: Caller,
               limit: Annotated[int, Query(ge=1, le=200, description="attempts per page")] = 50,
               before: Annotated[int | None, Query(ge=1, description="the previous page's next_before")] = None,
               ) -> dict[str, Any]:
    """The webhook's recent delivery attempts, newest first (the newest 200 are kept)."""
    _hook(request, project, webhook_id)
    return request.app.state.webhooks.queues.attempts_page(webhook_id, limit=limit, before=before)


@router.post("/projects/{project}/webhooks/{webhook_id}/replay", tags=["webhooks"], **requires(ADMIN))
async def replay(project: ProjectName, webhook_id: str, request: Request, caller: Caller) -> dict[str, Any]:
    """Deliver the dead-lettered events again (in order)."""
    _hook(request, project, webhook_id)
    pending = request.app.state.runtime.store.dead_letters(webhook_id)
    await request.app.state.runtime.commands.execute(
        _ctx(request, caller), project=project, aggregate="webhook", aggregate_id=webhook_id,
        decide=lambda s: domain.replay_dead_letters(s, webhook_id=webhook_id))
    return {"replaying": [d["sequence"] for d in pending]}
