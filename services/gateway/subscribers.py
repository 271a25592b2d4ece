"""Issuing and revoking read-only NATS credentials for outside event subscribers (docs/cluster.md,
"Event subscriptions from other systems").

Who may: a site admin, or a user who is an admin of every project the credentials name (the
credentials read those projects' whole event history, which a project admin can already read
over SSE and the audit routes; a grant of several projects needs admin rights in each, so no one
widens their reach by bundling). Credentials never outlive the token that issues them, as
tokens do not. The password is shown once; the event of record (``event_subscriber.issued`` on
the ``_site`` subject of the ``event_subscriber`` aggregate, which no subscriber can be granted)
keeps its bcrypt hash, which nats-server checks itself (cairn.kernel.subscriber_sync writes it
into each node's users file). Revocation is an event too; the users file drops the user and the
server cuts its connections on reload.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timezone
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request
from pydantic import BaseModel, ConfigDict, Field

from cairn.kernel.commands import CommandContext, Decision
from cairn.kernel.errors import AlreadyExists, Conflict, Forbidden, InvalidInput, NotFound
from cairn.kernel.identity import ACCOUNT, current_caller, requires
from cairn.kernel.ids import NAME_RE, PROJECT_NAME_PATTERN
from cairn.kernel.subscribers import (
    hash_password,
    inbox_prefix,
    nats_user,
    new_password,
    project_filter,
)
from cairn.kernel.telemetry import current_traceparent
from cairn.protocol import EVENTS_STREAM, SUBSCRIBER_AGGREGATE
from cairn.services.gateway import domain
from cairn.services.gateway.auth import Principal

router = APIRouter(prefix="/api/v1/events/subscribers")
Caller = Annotated[Principal, Depends(current_caller)]
SubscriberName = Annotated[str, Path(pattern=PROJECT_NAME_PATTERN, description="subscriber name")]
MAX_PROJECTS = 50


# --- domain (pure) -----------------------------------------------------------------------------

def issue(state: domain.State, *, name: str, projects: list[str], password_hash: str,
          expires_at: float | None) -> Decision:
    """New credentials; a name whose credentials were revoked may be issued again."""
    if not NAME_RE.match(name):
        raise InvalidInput(f"subscriber name {name!r} is not valid: 1-63 of a-z, 0-9, '-', '_'",
                           details={"field": "name"})
    bad = [p for p in projects if not NAME_RE.match(p)]
    if not projects or bad or len(projects) > MAX_PROJECTS:
        raise InvalidInput(f"projects must be 1-{MAX_PROJECTS} project names", details={"field": "projects"})
    if state is not None and not state["revoked"]:
        raise AlreadyExists(f"event subscriber {name!r} already exists; revoke it first")
    return "event_subscriber.issued", {"name": name, "projects": sorted(set(projects)),
                                       "password_hash": password_hash, "expires_at": expires_at}


def revoke(state: domain.State, *, name: str) -> Decision:
    if state is None:
        raise NotFound(f"no event subscriber {name!r}")
    if state["revoked"]:
        return None
    return "event_subscriber.revoked", {"name": name}


def evolve(state: domain.State, event_type: str, data: dict[str, Any]) -> dict[str, Any]:
    if event_type == "event_subscriber.issued":
        return {"projects": list(data["projects"]), "revoked": False}
    state = state or {"projects": [], "revoked": False}
    if event_type == "event_subscriber.revoked":
        state["revoked"] = True
    return state


# --- routes ------------------------------------------------------------------------------------

class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SubscriberIssue(Strict):
    name: str = Field(pattern=PROJECT_NAME_PATTERN, description="the subscriber's name; its NATS user is sub-<name>")
    projects: list[Annotated[str, Field(pattern=PROJECT_NAME_PATTERN)]] = Field(min_length=1, max_length=MAX_PROJECTS)
    expires_in_days: float | None = Field(default=None, gt=0, le=3650,
                                          description="default: never; at most until the token you use expires")


def _ctx(request: Request, caller: Principal) -> CommandContext:
    return CommandContext(actor=caller.actor, correlation_id=request.state.request_id,
                          idempotency_key=request.headers.get("idempotency-key"),
                          traceparent=current_traceparent())


def _may_manage(caller: Principal, projects: list[str]) -> bool:
    return caller.site_admin or all(caller.role_in(p) == "admin" for p in projects)


@router.post("", status_code=201, tags=["events"], **requires(ACCOUNT))
async def issue_credentials(body: SubscriberIssue, request: Request, caller: Caller) -> dict[str, Any]:
    """Read-only NATS credentials for the named projects' events (the password is shown once)."""
    if not _may_manage(caller, body.projects):
        raise Forbidden("only a site admin, or an admin of every project named, can issue event subscriber "
                        "credentials for them")
    rt = request.app.state.runtime
    minted_by = rt.store.token(caller.token_id)
    expiry = domain.token_expiry(datetime.now(timezone.utc), body.expires_in_days,
                                 minted_by["expires_at"] if minted_by else None)
    expires_at = None if expiry is None else datetime.fromisoformat(expiry).timestamp()
    password = new_password()
    password_hash = await asyncio.to_thread(hash_password, password)  # bcrypt: ~0.1 s of CPU
    await rt.commands.execute(_ctx(request, caller), project=domain.SITE, aggregate=SUBSCRIBER_AGGREGATE,
                              aggregate_id=body.name,
                              decide=lambda s: issue(s, name=body.name, projects=body.projects,
                                                     password_hash=password_hash, expires_at=expires_at))
    recorded = rt.store.event_subscriber(body.name)
    if recorded is None or recorded["password_hash"] != password_hash:
        # a retry of a request whose first attempt was recorded (same Idempotency-Key): that
        # attempt's password is the one NATS knows, and it is not ours to show
        raise Conflict(f"event subscriber {body.name!r} was issued by an earlier attempt of this request, whose "
                       "answer was lost; revoke it and issue it again")
    return {**_described(recorded), "password": password,
            "servers": request.app.state.settings.nats_url}


@router.get("", tags=["events"], **requires(ACCOUNT))
def list_credentials(request: Request, caller: Caller) -> dict[str, Any]:
    """Subscribers (never their passwords): all for site admins, else those of projects you administer."""
    rows = request.app.state.runtime.store.event_subscribers()
    return {"subscribers": [_described(r) for r in rows if _may_manage(caller, r["projects"])]}


@router.delete("/{name}", tags=["events"], **requires(ACCOUNT))
async def revoke_credentials(name: SubscriberName, request: Request, caller: Caller) -> dict[str, Any]:
    """Revoke: the NATS servers drop the user and close its connections on their next reload."""
    rt = request.app.state.runtime
    record = rt.store.event_subscriber(name)
    if record is None or not _may_manage(caller, record["projects"]):
        raise NotFound(f"no event subscriber {name!r}")
    await rt.commands.execute(_ctx(request, caller), project=domain.SITE, aggregate=SUBSCRIBER_AGGREGATE,
                              aggregate_id=name, decide=lambda s: revoke(s, name=name))
    return _described(rt.store.event_subscriber(name))


def _described(record: dict[str, Any] | None) -> dict[str, Any]:
    if record is None:  # the projection applies an append before the command returns
        raise NotFound("the event subscriber is not in the read model yet")
    record = {k: v for k, v in record.items() if k != "password_hash"}
    return {**record, "user": nats_user(record["name"]), "inbox_prefix": inbox_prefix(record["name"]),
            "stream": EVENTS_STREAM, "filters": [project_filter(p) for p in record["projects"]]}
