"""The gateway's own routes: tokens, members, audit, webhooks."""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta, timezone
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from cairn.kernel.commands import CommandContext
from cairn.kernel.errors import Forbidden, InvalidInput, NotFound
from cairn.kernel.ids import NAME_RE, PROJECT_NAME_PATTERN, new_id
from cairn.kernel.telemetry import current_traceparent
from cairn.services.gateway import domain
from cairn.services.gateway.audit import audit_page
from cairn.services.gateway.auth import Principal, new_token, refuse_job_tokens
from cairn.services.gateway.webhooks import check_url

router = APIRouter(prefix="/api/v1")


async def principal(request: Request) -> Principal:
    return request.state.principal


Caller = Annotated[Principal, Depends(principal)]


def _ctx(request: Request, caller: Principal) -> CommandContext:
    return CommandContext(actor=caller.actor, correlation_id=request.state.request_id,
                          idempotency_key=request.headers.get("idempotency-key"),
                          traceparent=current_traceparent())


def _project(name: str) -> str:
    if not NAME_RE.match(name):
        raise InvalidInput(f"project {name!r} is not a valid project name", details={"field": "project"})
    return name


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TokenCreate(Strict):
    user: str | None = Field(default=None, pattern=PROJECT_NAME_PATTERN, description="whose token; default: yours")
    kind: Literal["user", "service"] = "user"
    site_admin: bool = False
    expires_in_days: float | None = Field(default=None, gt=0, le=3650)
    description: str = Field(default="", max_length=500)


class MemberAdd(Strict):
    user: str = Field(pattern=PROJECT_NAME_PATTERN, description="user name: 1-63 of a-z, 0-9, '-', '_'")
    role: Literal["viewer", "editor", "admin"]


class WebhookCreate(Strict):
    url: str = Field(min_length=8, max_length=2000)
    types: list[str] = Field(min_length=1, max_length=50)


# --- tokens ------------------------------------------------------------------------------------

@router.post("/tokens", status_code=201, tags=["access"])
async def create_token(body: TokenCreate, request: Request, caller: Caller) -> dict[str, Any]:
    """Create a token (shown once). Site admins may create tokens for anyone, service accounts
    and other site admins; users create tokens for themselves."""
    refuse_job_tokens(caller, "create tokens")
    user = body.user or caller.user
    if (user != caller.user or body.site_admin or body.kind != caller.kind) and not caller.site_admin:
        raise Forbidden("only a site admin can create tokens for others, service accounts or site admins")
    token_id, token, secret_hash = new_token()
    expires = None
    if body.expires_in_days is not None:
        expires = (datetime.now(timezone.utc) + timedelta(days=body.expires_in_days)).isoformat()
    rt = request.app.state.rt
    await rt.commands.execute(_ctx(request, caller), project=domain.SITE, aggregate="user", aggregate_id=user,
                              decide=lambda s: domain.create_token(
                                  s, user=user, token_id=token_id, secret_hash=secret_hash, kind=body.kind,
                                  site_admin=body.site_admin, expires_at=expires, description=body.description))
    return {**rt.store.token(token_id), "token": token, "secret_hash": None}


@router.get("/tokens", tags=["access"])
def list_tokens(request: Request, caller: Caller, user: str | None = None) -> dict[str, Any]:
    """Tokens (never their secrets): all for site admins, else your own."""
    refuse_job_tokens(caller, "list tokens")
    if not caller.site_admin:
        if user not in (None, caller.user):
            raise Forbidden("only a site admin can list other users' tokens")
        user = caller.user
    return {"tokens": request.app.state.rt.store.tokens(user)}


@router.delete("/tokens/{token_id}", tags=["access"])
async def revoke_token(token_id: str, request: Request, caller: Caller) -> dict[str, Any]:
    refuse_job_tokens(caller, "revoke tokens")
    rt = request.app.state.rt
    record = rt.store.token(token_id)
    if record is None or (record["user"] != caller.user and not caller.site_admin):
        raise NotFound(f"no token {token_id!r}")
    await rt.commands.execute(_ctx(request, caller), project=domain.SITE, aggregate="user",
                              aggregate_id=record["user"],
                              decide=lambda s: domain.revoke_token(s, user=record["user"], token_id=token_id))
    return {"token_id": token_id, "revoked": True}


# --- members -----------------------------------------------------------------------------------

@router.get("/projects/{project}/members", tags=["access"])
def list_members(project: str, request: Request, caller: Caller) -> dict[str, Any]:
    caller.require(_project(project), "viewer")
    return {"members": request.app.state.rt.store.members(project)}


@router.post("/projects/{project}/members", tags=["access"])
async def add_member(project: str, body: MemberAdd, request: Request, caller: Caller) -> dict[str, Any]:
    """Give a user a role in a project (project admins and site admins)."""
    caller.require(_project(project), "admin")
    rt = request.app.state.rt
    await rt.commands.execute(_ctx(request, caller), project=project, aggregate="membership", aggregate_id=project,
                              decide=lambda s: domain.add_member(s, project=project, user=body.user, role=body.role))
    return {"members": rt.store.members(project)}


@router.delete("/projects/{project}/members/{user}", tags=["access"])
async def remove_member(project: str, user: str, request: Request, caller: Caller) -> dict[str, Any]:
    caller.require(_project(project), "admin")
    rt = request.app.state.rt
    await rt.commands.execute(_ctx(request, caller), project=project, aggregate="membership", aggregate_id=project,
                              decide=lambda s: domain.remove_member(s, project=project, user=user))
    return {"members": rt.store.members(project)}


# --- audit -------------------------------------------------------------------------------------

@router.get("/audit", tags=["audit"])
async def audit(request: Request, caller: Caller, project: str | None = None, actor: str | None = None,
                type: str | None = Query(default=None, description="event type globs, comma-separated"),
                since: str | None = None, cursor: Annotated[int, Query(ge=0)] = 0,
                limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> dict[str, Any]:
    """Who did what and when, from the log: project admins for their projects, site admins for all."""
    if project is None:
        caller.require_site_admin()
    else:
        caller.require(_project(project), "admin")
    return await audit_page(request.app.state.rt.log, project=project, actor=actor, types=type, since=since,
                            after=cursor, limit=limit)


# --- webhooks ----------------------------------------------------------------------------------

@router.post("/projects/{project}/webhooks", status_code=201, tags=["webhooks"])
async def create_webhook(project: str, body: WebhookCreate, request: Request, caller: Caller) -> dict[str, Any]:
    """Subscribe a URL to a project's events; the response shows the signing secret once."""
    caller.require(_project(project), "admin")
    rt = request.app.state.rt
    check_url(body.url, allow_private=request.app.state.settings.webhooks_allow_private)
    webhook_id, secret = new_id(), "whsec_" + secrets.token_urlsafe(32)
    await rt.commands.execute(_ctx(request, caller), project=project, aggregate="webhook", aggregate_id=webhook_id,
                              decide=lambda s: domain.create_webhook(
                                  s, webhook_id=webhook_id, url=body.url, types=body.types, secret=secret))
    created = next(h for h in rt.store.webhooks(project) if h["id"] == webhook_id)
    return {**created, "secret": secret}


@router.get("/projects/{project}/webhooks", tags=["webhooks"])
def list_webhooks(project: str, request: Request, caller: Caller) -> dict[str, Any]:
    caller.require(_project(project), "admin")
    return {"webhooks": request.app.state.rt.store.webhooks(project)}


def _hook(request: Request, project: str, webhook_id: str) -> dict[str, Any]:
    hook = request.app.state.rt.store.webhook(webhook_id)
    if hook is None or hook["project"] != project or hook["deleted"]:
        raise NotFound(f"webhook {webhook_id!r} does not exist in project {project!r}")
    return hook


@router.delete("/projects/{project}/webhooks/{webhook_id}", status_code=204, tags=["webhooks"])
async def delete_webhook(project: str, webhook_id: str, request: Request, caller: Caller) -> Response:
    caller.require(_project(project), "admin")
    _hook(request, project, webhook_id)
    await request.app.state.rt.commands.execute(
        _ctx(request, caller), project=project, aggregate="webhook", aggregate_id=webhook_id,
        decide=lambda s: domain.delete_webhook(s, webhook_id=webhook_id))
    return Response(status_code=204)


@router.get("/projects/{project}/webhooks/{webhook_id}/dead-letters", tags=["webhooks"])
def dead_letters(project: str, webhook_id: str, request: Request, caller: Caller) -> dict[str, Any]:
    caller.require(_project(project), "admin")
    _hook(request, project, webhook_id)
    return {"dead_letters": request.app.state.rt.store.dead_letters(webhook_id)}


@router.post("/projects/{project}/webhooks/{webhook_id}/replay", tags=["webhooks"])
async def replay(project: str, webhook_id: str, request: Request, caller: Caller) -> dict[str, Any]:
    """Deliver the dead-lettered events again (in order)."""
    caller.require(_project(project), "admin")
    _hook(request, project, webhook_id)
    pending = request.app.state.rt.store.dead_letters(webhook_id)
    await request.app.state.rt.commands.execute(
        _ctx(request, caller), project=project, aggregate="webhook", aggregate_id=webhook_id,
        decide=lambda s: domain.replay_dead_letters(s, webhook_id=webhook_id))
    return {"replaying": [d["sequence"] for d in pending]}
