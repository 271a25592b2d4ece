"""The gateway's read model: tokens (hashes only), memberships, webhooks and dead letters."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

from cairn.kernel.envelope import Event, subject_for
from cairn.kernel.store import EventHandlers, SnapshotProjection, SqliteStore, load_state
from cairn.services.gateway.domain import EVOLVERS, evolve_membership

SCHEMA = """
CREATE TABLE IF NOT EXISTS tokens (
    token_id TEXT PRIMARY KEY, user TEXT NOT NULL, kind TEXT NOT NULL, site_admin INTEGER NOT NULL,
    secret_hash TEXT NOT NULL, expires_at TEXT, description TEXT NOT NULL, revoked INTEGER NOT NULL,
    created_at TEXT NOT NULL, created_by TEXT NOT NULL, parent_token_id TEXT);
CREATE INDEX IF NOT EXISTS tokens_by_user ON tokens(user);
CREATE TABLE IF NOT EXISTS members (
    project TEXT NOT NULL, user TEXT NOT NULL, role TEXT NOT NULL, updated_at TEXT NOT NULL,
    PRIMARY KEY (project, user));
CREATE INDEX IF NOT EXISTS members_by_user ON members(user);
CREATE TABLE IF NOT EXISTS webhooks (
    id TEXT PRIMARY KEY, project TEXT NOT NULL, url TEXT NOT NULL, types TEXT NOT NULL,
    secret TEXT NOT NULL, deleted INTEGER NOT NULL, created_at TEXT NOT NULL, created_by TEXT NOT NULL,
    created_seq INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS dead_letters (
    webhook_id TEXT NOT NULL, sequence INTEGER NOT NULL, error TEXT NOT NULL, attempts INTEGER NOT NULL,
    time TEXT NOT NULL, PRIMARY KEY (webhook_id, sequence));
"""

# the events the gateway's projection reads; ``project`` for the first admin in project.created v2
AGGREGATES = ("user", "membership", "webhook", "project")
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
    return GatewayProjection(EVOLVERS, HANDLERS)


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


class GatewayStore(SqliteStore):
    """Queries over the gateway's read model."""

    def __init__(self, path: str | Path) -> None:
        super().__init__(path, SCHEMA)
        columns = {r[1] for r in self._writer.execute("PRAGMA table_info(tokens)")}
        if "parent_token_id" not in columns:  # a store made before tokens recorded who minted them
            self._writer.execute("ALTER TABLE tokens ADD COLUMN parent_token_id TEXT")

    def token(self, token_id: str) -> dict[str, Any] | None:
        row = self.query_one("SELECT * FROM tokens WHERE token_id=?", (token_id,))
        return dict(row) if row else None

    def tokens(self, user: str | None = None) -> list[dict[str, Any]]:
        sql = "SELECT token_id, user, kind, site_admin, expires_at, description, revoked, created_at, " \
              "created_by, parent_token_id FROM tokens"
        rows = self.query(sql + (" WHERE user=?" if user else "") + " ORDER BY created_at",
                          (user,) if user else ())
        return [{**dict(r), "site_admin": bool(r["site_admin"]), "revoked": bool(r["revoked"])} for r in rows]

    def any_token(self) -> bool:
        return self.query_one("SELECT 1 FROM tokens LIMIT 1") is not None

    def roles_of(self, user: str) -> dict[str, str]:
        return {r["project"]: r["role"] for r in self.query("SELECT project, role FROM members WHERE user=?", (user,))}

    def members(self, project: str) -> list[dict[str, Any]]:
        return [dict(r) for r in self.query(
            "SELECT user, role, updated_at FROM members WHERE project=? ORDER BY user", (project,))]

    def webhooks(self, project: str | None = None, *, with_secret: bool = False) -> list[dict[str, Any]]:
        rows = self.query("SELECT * FROM webhooks WHERE deleted=0" + (" AND project=?" if project else "")
                          + " ORDER BY created_at", (project,) if project else ())
        out = []
        for r in rows:
            item = {**dict(r), "types": json.loads(r["types"]), "deleted": bool(r["deleted"])}
            if not with_secret:
                item.pop("secret")
            out.append(item)
        return out

    def webhook_projects(self) -> set[str]:
        """The projects with at least one live webhook."""
        return {r["project"] for r in self.query("SELECT DISTINCT project FROM webhooks WHERE deleted=0")}

    def webhook(self, webhook_id: str) -> dict[str, Any] | None:
        row = self.query_one("SELECT * FROM webhooks WHERE id=?", (webhook_id,))
        return {**dict(row), "types": json.loads(row["types"])} if row else None

    def dead_letters(self, webhook_id: str) -> list[dict[str, Any]]:
        return [dict(r) for r in self.query(
            "SELECT sequence, error, attempts, time FROM dead_letters WHERE webhook_id=? ORDER BY sequence",
            (webhook_id,))]
