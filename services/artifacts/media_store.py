"""A run's media index in the artifact store's read model: the table, the projection's handlers
for ``media.logged`` / ``media.thumbnail_logged``, and the queries the media routes serve.

The index lives here, beside the run's artifacts, because this service owns the blobs media are
made of and the proof that a project holds them: it can refuse an entry naming bytes the project
never sent in the same place it refuses such an artifact, and GC sees media as references."""

from __future__ import annotations

import sqlite3
from typing import Any

from cairn.kernel.envelope import Event
from cairn.kernel.store import EventHandlers, SqliteStore
from cairn.protocol import MEDIA_LOGGED, MEDIA_THUMBNAIL_LOGGED

MEDIA_SCHEMA = """
-- A run's media: one row per entry; digest NULL while only a thumbnail arrived (MLflow may send
-- the +compressed file first). Listed in (key, step, seq) order.
CREATE TABLE IF NOT EXISTS run_media (
    project TEXT NOT NULL, run_id TEXT NOT NULL, entry TEXT NOT NULL, key TEXT, step INTEGER,
    kind TEXT, digest TEXT, thumbnail_digest TEXT, thumbnail_type TEXT, media_type TEXT,
    size INTEGER, width INTEGER, height INTEGER, source TEXT, name TEXT, created_at TEXT,
    created_by TEXT, seq INTEGER NOT NULL, PRIMARY KEY (project, run_id, entry));
CREATE INDEX IF NOT EXISTS run_media_by_key ON run_media(project, run_id, key, step);
"""

COLUMNS = ("entry", "key", "step", "kind", "digest", "thumbnail_digest", "thumbnail_type", "media_type",
           "size", "width", "height", "source", "name", "created_at", "created_by")
PAGE_MAX = 1000


def register_media_handlers(handlers: EventHandlers, ref: Any) -> None:
    """Add the media events to the artifact store's projection; ``ref(conn, digest, source,
    may_be_manifest)`` records a GC root."""

    @handlers.handles(MEDIA_LOGGED)
    def _media_logged(conn: sqlite3.Connection, e: Event) -> None:
        d = e.data
        conn.execute(
            "INSERT INTO run_media(project, run_id, entry, key, step, kind, digest, thumbnail_digest, "
            "thumbnail_type, media_type, size, width, height, source, name, created_at, created_by, seq) "
            "VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT(project, run_id, entry) DO UPDATE SET key=excluded.key, step=excluded.step, "
            "kind=excluded.kind, digest=excluded.digest, "
            "thumbnail_digest=COALESCE(excluded.thumbnail_digest, run_media.thumbnail_digest), "
            "thumbnail_type=COALESCE(excluded.thumbnail_type, run_media.thumbnail_type), "
            "media_type=excluded.media_type, size=excluded.size, width=excluded.width, "
            "height=excluded.height, source=excluded.source, name=excluded.name, "
            "created_at=excluded.created_at, created_by=excluded.created_by, seq=excluded.seq",
            (e.project, e.aggregate_id, d["entry"], d["key"], d["step"], d["kind"], d["digest"],
             d["thumbnail_digest"], "image/png" if d["thumbnail_digest"] else None, d["media_type"],
             d["size"], d["width"], d["height"], d["source"], d["name"], e.time, e.actor, e.sequence))
        source = f"media:{e.project}/{e.aggregate_id}/{d['entry']}"
        ref(conn, d["digest"], source, False)
        if d["thumbnail_digest"]:
            ref(conn, d["thumbnail_digest"], f"{source}#thumbnail", False)

    @handlers.handles(MEDIA_THUMBNAIL_LOGGED)
    def _thumbnail_logged(conn: sqlite3.Connection, e: Event) -> None:
        d = e.data
        conn.execute(
            "INSERT INTO run_media(project, run_id, entry, thumbnail_digest, thumbnail_type, seq) "
            "VALUES(?, ?, ?, ?, ?, ?) ON CONFLICT(project, run_id, entry) DO UPDATE SET "
            "thumbnail_digest=excluded.thumbnail_digest, thumbnail_type=excluded.thumbnail_type",
            (e.project, e.aggregate_id, d["entry"], d["thumbnail_digest"], d["media_type"], e.sequence))
        ref(conn, d["thumbnail_digest"], f"media:{e.project}/{e.aggregate_id}/{d['entry']}#thumbnail", False)


class MediaQueries(SqliteStore):
    """The media routes' queries (``ArtifactsStore`` is one)."""

    def run_media(self, project: str, run_id: str, *, key: str | None = None, kind: str | None = None,
                  step_min: int | None = None, step_max: int | None = None, limit: int = 100,
                  offset: int = 0) -> dict[str, Any]:
        """One page of a run's media in (key, step, seq) order, filtered; ``next_offset`` None at the end."""
        where = ["project=?", "run_id=?", "digest IS NOT NULL"]
        params: list[Any] = [project, run_id]
        for clause, value in (("key=?", key), ("kind=?", kind), ("step>=?", step_min), ("step<=?", step_max)):
            if value is not None:
                where.append(clause)
                params.append(value)
        rows = self.query(f"SELECT {', '.join(COLUMNS)} FROM run_media WHERE {' AND '.join(where)} "
                          "ORDER BY key, step, seq LIMIT ? OFFSET ?", (*params, limit + 1, offset))
        items = [dict(r) for r in rows[:limit]]
        return {"media": items, "next_offset": offset + limit if len(rows) > limit else None}

    def run_media_keys(self, project: str, run_id: str) -> list[dict[str, Any]]:
        """Each key of a run: its kind, how many entries, the first and last step."""
        rows = self.query(
            "SELECT key, kind, COUNT(*) AS count, MIN(step) AS min_step, MAX(step) AS max_step FROM run_media "
            "WHERE project=? AND run_id=? AND digest IS NOT NULL GROUP BY key, kind ORDER BY key",
            (project, run_id))
        return [dict(r) for r in rows]

    def media_by_seq(self, seq: int) -> dict[str, Any]:
        """The entry an append at ``seq`` recorded."""
        row = self.query_one(f"SELECT {', '.join(COLUMNS)} FROM run_media WHERE seq=?", (seq,))
        assert row is not None
        return dict(row)
