"""The gateway's projection: tokens, memberships and webhooks from the gateway's own aggregates'
events, plus the first admin that the registry's ``project.created`` names, into
:class:`~cairn.services.gateway.store.GatewayStore`."""

from __future__ import annotations

import json
import sqlite3

from cairn.kernel.envelope import Event, subject_for
from cairn.kernel.store import EventHandlers, SnapshotProjection, load_state
from cairn.protocol import SUBSCRIBER_AGGREGATE
from cairn.services.gateway import subscribers
from cairn.services.gateway.domain import EVOLVERS, evolve_membership

# the events the gateway's projection reads; ``project`` for the first admin in project.created v2
AGGREGATES = ("user", "membership", "webhook", "project", SUBSCRIBER_AGGREGATE)
HANDLERS = EventHandlers()
handles = HANDLERS.handles


class GatewayProjection(SnapshotProjection):
    """The gateway's snapshots and views, plus one event of another service's aggregate: the
    registry's ``project.created`` names the project's first admin, which the gateway's
    ``membership`` aggregate must know (so that, say, the last admin cannot leave). Its snapshot
    is seeded with that member, keeping the membership subject's own last sequence (0 when nothing
    is on it yet): the snapshot's sequence is what the next ``member.*`` append expects on that
    subject, and the ``project.created`` is on the project's subject, not that one."""

    def __call__(self, conn: sqlite3.Connection, event: Event) -> None:
        if event.type == "project.created" and event.data.get("first_admin"):
            subject = subject_for(event.project, "membership", event.project)
            cached = self._snapshots.get(subject)
            seq, state = cached if cached is not None else load_state(conn, subject)
            self._snapshots[subject] = (seq, evolve_membership(state, event.type, event.data))
        super().__call__(conn, event)


def projection() -> SnapshotProjection:
    """A fresh entry point for one gateway instance (its batch cache is its own)."""
    return GatewayProjection({**EVOLVERS, SUBSCRIBER_AGGREGATE: subscribers.evolve}, HANDLERS)


@handles("token.created")
def _token_created(conn: sqlite3.Connection, e: Event) -> None:
    d = e.data
    conn.execute("INSERT INTO tokens(token_id, user, kind, site_admin, secret_hash, expires_at, description, "
                 "revoked, created_at, created_by, parent_token_id) VALUES(?, ?, ?, ?, ?, ?, ?, 0, ?, ?, ?)",
                 (d["token_id"], d["user"], d["kind"], int(d["site_admin"]), d["secret_hash"], d["expires_at"],
                  d["description"], e.time, e.actor, d.get("parent_token_id")))  # v1 events have none


@handles("token.revoked")
def _token_revoked(conn: sqlite3.Connection, e: Event) -> None:
    conn.execute("UPDATE tokens SET revoked=1 WHERE token_id=?", (e.data["token_id"],))


def _set_member(conn: sqlite3.Connection, project: str, user: str, role: str, time: str) -> None:
    conn.execute("INSERT INTO members VALUES(?, ?, ?, ?) ON CONFLICT(project, user) DO UPDATE SET "
                 "role=excluded.role, updated_at=excluded.updated_at", (project, user, role, time))


@handles("member.added")
def _member_added(conn: sqlite3.Connection, e: Event) -> None:
    _set_member(conn, e.project, e.data["user"], e.data["role"], e.time)


@handles("project.created")
def _project_created(conn: sqlite3.Connection, e: Event) -> None:
    """v2 names the creator, the project's first admin; v1's creator came in a ``member.added``."""
    if e.data.get("first_admin"):
        _set_member(conn, e.project, e.data["first_admin"], "admin", e.time)


@handles("member.removed")
def _member_removed(conn: sqlite3.Connection, e: Event) -> None:
    conn.execute("DELETE FROM members WHERE project=? AND user=?", (e.project, e.data["user"]))


@handles("webhook.created")
def _webhook_created(conn: sqlite3.Connection, e: Event) -> None:
    d = e.data
    conn.execute("INSERT INTO webhooks VALUES(?, ?, ?, ?, ?, 0, ?, ?, ?)",
                 (d["webhook_id"], e.project, d["url"], json.dumps(d["types"]), d["secret"], e.time, e.actor,
                  e.sequence))


@handles("webhook.deleted")
def _webhook_deleted(conn: sqlite3.Connection, e: Event) -> None:
    conn.execute("UPDATE webhooks SET deleted=1 WHERE id=?", (e.data["webhook_id"],))


@handles("webhook.delivery_failed")
def _delivery_failed(conn: sqlite3.Connection, e: Event) -> None:
    d = e.data
    conn.execute("INSERT OR REPLACE INTO dead_letters VALUES(?, ?, ?, ?, ?)",
                 (d["webhook_id"], d["sequence"], d["error"], d["attempts"], e.time))


@handles("webhook.replay_requested")
def _replay_requested(conn: sqlite3.Connection, e: Event) -> None:
    conn.executemany("DELETE FROM dead_letters WHERE webhook_id=? AND sequence=?",
                     [(e.data["webhook_id"], s) for s in e.data["sequences"]])


@handles("event_subscriber.issued")
def _subscriber_issued(conn: sqlite3.Connection, e: Event) -> None:
    """Outside event subscribers (services/gateway/subscribers.py); the password hash tells the
    issuing request whether its own attempt was recorded (never shown)."""
    d = e.data
    conn.execute("INSERT OR REPLACE INTO event_subscribers VALUES(?, ?, ?, 0, ?, ?, NULL, NULL, ?)",
                 (d["name"], json.dumps(d["projects"]), d["expires_at"], e.time, e.actor, d["password_hash"]))


@handles("event_subscriber.revoked")
def _subscriber_revoked(conn: sqlite3.Connection, e: Event) -> None:
    conn.execute("UPDATE event_subscribers SET revoked=1, revoked_at=?, revoked_by=? WHERE name=?",
                 (e.time, e.actor, e.data["name"]))
