"""The gateway's read model: tokens (hashes only), memberships, webhooks and dead letters."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from cairn.kernel.store import SqliteStore

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
CREATE TABLE IF NOT EXISTS event_subscribers (
    name TEXT PRIMARY KEY, projects TEXT NOT NULL, expires_at REAL, revoked INTEGER NOT NULL,
    issued_at TEXT NOT NULL, issued_by TEXT NOT NULL, revoked_at TEXT, revoked_by TEXT, password_hash TEXT NOT NULL);
"""

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

    def event_subscriber(self, name: str) -> dict[str, Any] | None:
        row = self.query_one("SELECT * FROM event_subscribers WHERE name=?", (name,))
        return _subscriber(dict(row)) if row else None

    def event_subscribers(self) -> list[dict[str, Any]]:
        return [_subscriber(dict(r)) for r in self.query("SELECT * FROM event_subscribers ORDER BY name")]


def _subscriber(row: dict[str, Any]) -> dict[str, Any]:
    return {**row, "projects": json.loads(row["projects"]), "revoked": bool(row["revoked"])}
