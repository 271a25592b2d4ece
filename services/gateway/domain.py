"""Access control and subscriptions as pure functions: users with tokens (hashed), project
memberships with roles, webhooks. Commands return one event (type, data); ``evolve`` folds it.

Aggregates: ``user`` (project ``_site``, id = user name), ``membership`` (id = project name),
``webhook`` (id = webhook id).
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import Any

from cairn.kernel.commands import Decision
from cairn.kernel.errors import AlreadyExists, Conflict, InvalidInput, NotFound
from cairn.kernel.identity import ROLES
from cairn.kernel.ids import NAME_RE, anchored

State = dict[str, Any] | None
SITE = "_site"
USER_RE = NAME_RE  # user names are subject tokens too, like project names
# Event type globs for webhooks (fnmatch: "run.*", "model_version.alias_*").
EVENT_GLOB_RE = anchored(r"[A-Za-z0-9_.*?!\[\]-]{1,100}")


def check_user(name: str) -> str:
    if not isinstance(name, str) or not USER_RE.match(name):
        raise InvalidInput(f"user name {name!r} is not valid: 1-63 of a-z, 0-9, '-', '_'",
                           details={"field": "user"})
    return name


# --- users and tokens --------------------------------------------------------------------------

def _instant(iso: str) -> datetime:
    return datetime.fromisoformat(iso.replace("Z", "+00:00"))


def token_expiry(now: datetime, expires_in_days: float | None, minted_by_expires_at: str | None) -> str | None:
    """When a new token expires: ``expires_in_days`` from ``now`` (None: never), but never after
    the token that mints it (``minted_by_expires_at``), so an expiring token cannot extend itself
    by minting a longer-lived one, and neither can a site admin's expiring token mint one for
    someone else. A request past that is a 422 that says the latest expiry allowed; nothing is
    capped silently, so a token never expires earlier than its creator asked."""
    expires = None if expires_in_days is None else now + timedelta(days=expires_in_days)
    if minted_by_expires_at is None:
        return None if expires is None else expires.isoformat()
    latest = _instant(minted_by_expires_at)
    if expires is None or expires > latest:
        days_left = max(0.0, math.floor((latest - now).total_seconds() / 86400 * 1e4) / 1e4)
        asked = "a token that never expires" if expires is None else f"one that expires at {expires.isoformat()}"
        raise InvalidInput(f"the token you use expires at {minted_by_expires_at} and cannot create a token that "
                           f"outlives it (you asked for {asked}); ask for expires_in_days <= {days_left:g}, "
                           "or use a longer-lived token",
                           details={"field": "expires_in_days", "latest_expires_at": minted_by_expires_at,
                                    "max_expires_in_days": days_left})
    return expires.isoformat()


def create_token(state: State, *, user: str, token_id: str, secret_hash: str, kind: str, site_admin: bool,
                 expires_at: str | None, description: str, parent_token_id: str | None = None) -> Decision:
    """A token for ``user``; ``parent_token_id`` is the token that minted it (None for the first
    site admin's). Its expiry comes from :func:`token_expiry`."""
    check_user(user)
    if kind not in ("user", "service"):
        raise InvalidInput("kind must be 'user' or 'service'", details={"field": "kind"})
    if state is not None and state["kind"] != kind:
        raise Conflict(f"user {user!r} is a {state['kind']} account, not a {kind} account")
    return "token.created", {"user": user, "token_id": token_id, "secret_hash": secret_hash, "kind": kind,
                             "site_admin": site_admin, "expires_at": expires_at, "description": description,
                             "parent_token_id": parent_token_id}


def revoke_token(state: State, *, user: str, token_id: str) -> Decision:
    tokens = (state or {}).get("tokens", {})
    if token_id not in tokens:
        raise NotFound(f"user {user!r} has no token {token_id!r}")
    if tokens[token_id]["revoked"]:
        return None
    return "token.revoked", {"user": user, "token_id": token_id}


def evolve_user(state: State, event_type: str, data: dict[str, Any]) -> dict[str, Any]:
    state = state or {"kind": data.get("kind", "user"), "tokens": {}}
    if event_type == "token.created":
        state["tokens"][data["token_id"]] = {"revoked": False}
    elif event_type == "token.revoked":
        state["tokens"][data["token_id"]]["revoked"] = True
    return state


# --- memberships -------------------------------------------------------------------------------

def add_member(state: State, *, project: str, user: str, role: str) -> Decision:
    check_user(user)
    if role not in ROLES:
        raise InvalidInput(f"role must be one of {', '.join(ROLES)}, not {role!r}", details={"field": "role"})
    if (state or {}).get("members", {}).get(user) == role:
        return None
    return "member.added", {"user": user, "role": role}


def remove_member(state: State, *, project: str, user: str) -> Decision:
    if user not in (state or {}).get("members", {}):
        raise NotFound(f"user {user!r} is not a member of project {project!r}")
    return "member.removed", {"user": user}


def evolve_membership(state: State, event_type: str, data: dict[str, Any]) -> dict[str, Any]:
    """Fold a membership event, or the registry's ``project.created``, whose ``first_admin`` (v2;
    absent in v1, where a ``member.added`` followed) is the project's first member."""
    state = state or {"members": {}}
    if event_type == "project.created":
        if data.get("first_admin"):
            state["members"][data["first_admin"]] = "admin"
    elif event_type == "member.added":
        state["members"][data["user"]] = data["role"]
    elif event_type == "member.removed":
        state["members"].pop(data["user"], None)
    return state


# --- webhooks ----------------------------------------------------------------------------------

def create_webhook(state: State, *, webhook_id: str, url: str, types: list[str], secret: str) -> Decision:
    if state is not None:
        raise AlreadyExists(f"webhook {webhook_id!r} already exists")
    if not types or any(not isinstance(t, str) or not EVENT_GLOB_RE.match(t) for t in types):
        raise InvalidInput("types must be a non-empty list of event type globs such as 'run.*' "
                           "(letters, digits and '_.-*?![]', up to 100 each)", details={"field": "types"})
    return "webhook.created", {"webhook_id": webhook_id, "url": url, "types": types, "secret": secret}


def delete_webhook(state: State, *, webhook_id: str) -> Decision:
    if state is None or state["deleted"]:
        raise NotFound(f"webhook {webhook_id!r} does not exist")
    return "webhook.deleted", {"webhook_id": webhook_id}


def dead_letter(state: State, *, webhook_id: str, sequence: int, error: str, attempts: int) -> Decision:
    if state is None:
        raise NotFound(f"webhook {webhook_id!r} does not exist")
    return "webhook.delivery_failed", {"webhook_id": webhook_id, "sequence": sequence, "error": error[:2000],
                                       "attempts": attempts}


def replay_dead_letters(state: State, *, webhook_id: str) -> Decision:
    if state is None or state["deleted"]:
        raise NotFound(f"webhook {webhook_id!r} does not exist")
    if not state["dead"]:
        return None
    return "webhook.replay_requested", {"webhook_id": webhook_id, "sequences": sorted(state["dead"])}


def evolve_webhook(state: State, event_type: str, data: dict[str, Any]) -> dict[str, Any]:
    state = state or {"deleted": False, "dead": []}
    if event_type == "webhook.deleted":
        state["deleted"] = True
    elif event_type == "webhook.delivery_failed":
        state["dead"] = sorted(set(state["dead"]) | {data["sequence"]})
    elif event_type == "webhook.replay_requested":
        state["dead"] = sorted(set(state["dead"]) - set(data["sequences"]))
    return state


EVOLVERS = {"user": evolve_user, "membership": evolve_membership, "webhook": evolve_webhook}
