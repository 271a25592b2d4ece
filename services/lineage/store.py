"""The lineage read model: a DuckDB database of nodes and typed edges.

One writer connection applies a batch of events with a few bulk statements (Arrow tables in,
anti-joins against what is there) and moves the tracking position in the same transaction, so a
crash neither loses nor double-applies an event. Readers use cursors of the same database (one
per thread) and see committed snapshots; raw SQL for site admins runs on its own cursor with
external access off, inside a read-only transaction (sql.py).
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from cairn.kernel.envelope import Event
from cairn.services.lineage.domain import CONTENT_OF, KIND_CODES
from cairn.services.lineage.projection import EDGE_COLUMNS, NODE_COLUMNS, GraphBatch

SCHEMA = """
CREATE TABLE IF NOT EXISTS tracking (name VARCHAR NOT NULL, last_seq BIGINT NOT NULL);
CREATE TABLE IF NOT EXISTS nodes (
    nid BIGINT PRIMARY KEY, key VARCHAR NOT NULL, kind VARCHAR NOT NULL, project VARCHAR,
    name VARCHAR NOT NULL, version VARCHAR, parent BIGINT, title VARCHAR,
    seq BIGINT NOT NULL, time TIMESTAMP NOT NULL);
-- Blobs are most of the nodes and carry nothing but their digest: a table of their own keeps the
-- lookups of every other kind small.
CREATE TABLE IF NOT EXISTS blobs (nid BIGINT PRIMARY KEY, digest VARCHAR NOT NULL, seq BIGINT NOT NULL,
    time TIMESTAMP NOT NULL);
CREATE OR REPLACE VIEW all_nodes AS
    SELECT nid, key, kind, project, name, version, parent, title, seq, time FROM nodes
    UNION ALL SELECT nid, 'blob:' || digest, 'blob', NULL, digest, NULL, NULL, NULL, seq, time FROM blobs;
-- Edges in tables by how walks use them, so a walk scans little:
-- * artifact_edges: every run -> blob `produced` edge (by far the most edges);
-- * flow_edges: the other edges that never end, plus a copy of each artifact edge whose blob is
--   the content of something (a derived dataset, a model version): walks scan only this table
--   and interval_edges level by level; blobs nothing was made from are added in one last step;
-- * interval_edges: edges that may end (an alias moving away), small, so ending one scans little;
-- * structure_edges: version_of, shown in graphs, not walked.
CREATE TABLE IF NOT EXISTS artifact_edges (
    src BIGINT NOT NULL, dst BIGINT NOT NULL, type VARCHAR NOT NULL, project VARCHAR NOT NULL,
    label VARCHAR, seq BIGINT NOT NULL, time TIMESTAMP NOT NULL);
CREATE TABLE IF NOT EXISTS flow_edges (
    src BIGINT NOT NULL, dst BIGINT NOT NULL, type VARCHAR NOT NULL, project VARCHAR NOT NULL,
    label VARCHAR, seq BIGINT NOT NULL, time TIMESTAMP NOT NULL);
CREATE TABLE IF NOT EXISTS structure_edges (
    src BIGINT NOT NULL, dst BIGINT NOT NULL, type VARCHAR NOT NULL, project VARCHAR NOT NULL,
    label VARCHAR, seq BIGINT NOT NULL, time TIMESTAMP NOT NULL);
CREATE TABLE IF NOT EXISTS interval_edges (
    src BIGINT NOT NULL, dst BIGINT NOT NULL, type VARCHAR NOT NULL, project VARCHAR NOT NULL,
    label VARCHAR, seq BIGINT NOT NULL, time TIMESTAMP NOT NULL, until_seq BIGINT, until_time TIMESTAMP);
CREATE OR REPLACE VIEW edges AS
    SELECT *, NULL::BIGINT AS until_seq, NULL::TIMESTAMP AS until_time FROM artifact_edges
    UNION ALL SELECT *, NULL::BIGINT, NULL::TIMESTAMP FROM flow_edges
        WHERE NOT (type = 'produced' AND dst >> 56 = {blob_code})  -- not the copies
    UNION ALL SELECT *, NULL::BIGINT, NULL::TIMESTAMP FROM structure_edges
    UNION ALL SELECT * FROM interval_edges;
-- Status changes (runs), appended; the latest by sequence is the status.
CREATE TABLE IF NOT EXISTS statuses (nid BIGINT NOT NULL, status VARCHAR NOT NULL, seq BIGINT NOT NULL,
    time TIMESTAMP NOT NULL);
CREATE TABLE IF NOT EXISTS event_types (type VARCHAR NOT NULL, mapped BOOLEAN NOT NULL, events BIGINT NOT NULL);
"""

# The documented views for `cairn lineage sql` (docs/lineage.md): readable references, no ids.
VIEWS = """
CREATE OR REPLACE VIEW lineage_nodes AS
SELECT n.kind, n.project, n.key,
       CASE WHEN n.parent IS NOT NULL THEN coalesce(p.name, n.name) || '@' || n.version ELSE n.name END AS label,
       n.title, s.status, n.seq, n.time
FROM all_nodes n LEFT JOIN nodes p ON p.nid = n.parent
LEFT JOIN (SELECT nid, arg_max(status, seq) AS status FROM statuses GROUP BY nid) s ON s.nid = n.nid;
CREATE OR REPLACE VIEW lineage_edges AS
SELECT s.key AS src, e.type, d.key AS dst, e.project, e.label, e.seq, e.time, e.until_seq, e.until_time
FROM edges e JOIN all_nodes s ON s.nid = e.src JOIN all_nodes d ON d.nid = e.dst;
CREATE OR REPLACE VIEW lineage_event_types AS SELECT type, mapped, events FROM event_types;
"""

TABLES = ("tracking", "nodes", "blobs", "artifact_edges", "flow_edges", "structure_edges", "interval_edges", "statuses", "event_types")
VIEWS_DROP = ("lineage_nodes", "lineage_edges", "lineage_event_types", "edges", "all_nodes")
BatchHandler = Callable[[GraphBatch, Event], None]


class LineageStore:
    """A lineage database file. ``apply`` is called from one writer thread at a time."""

    def __init__(self, path: str | os.PathLike[str], *, threads: int = 1, memory_limit: str = "1GB") -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # No reading or writing of files from SQL: the admin SQL route runs on this database.
        self.con = duckdb.connect(str(self.path), config={
            "threads": threads, "memory_limit": memory_limit, "enable_external_access": False})
        self._lock = threading.RLock()  # the writer connection, shared by apply, reset and hashing
        self._local = threading.local()
        self._create()

    def _create(self) -> None:
        with self._lock:
            self.con.execute(SCHEMA.replace("{blob_code}", str(KIND_CODES["blob"])))
            self.con.execute(VIEWS)

    def reader(self) -> duckdb.DuckDBPyConnection:
        """A cursor for the calling thread: its own connection to the same database."""
        cur = getattr(self._local, "cur", None)
        if cur is None:
            cur = self._local.cur = self.cursor()
        return cur

    def cursor(self) -> duckdb.DuckDBPyConnection:
        """A new connection to this database (made while the writer is not mid-batch)."""
        with self._lock:
            return self.con.cursor()

    def query(self, sql: str, params: list[Any] | tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        return self.reader().execute(sql, list(params)).fetchall()

    def last_sequence(self, name: str = "main") -> int:
        with self._lock:
            rows = self.con.execute("SELECT last_seq FROM tracking WHERE name=?", [name]).fetchall()
        return int(rows[0][0]) if rows else 0

    def apply(self, events: list[Event], handler: BatchHandler, name: str = "main") -> int:
        """Apply events newer than the tracking position, and move it, in one transaction."""
        with self._lock:
            con = self.con
            _run(con, "BEGIN TRANSACTION")
            try:
                rows = _run(con, "SELECT last_seq FROM tracking WHERE name=?", [name])
                last = int(rows[0][0]) if rows else 0
                new_batch = getattr(handler, "new_batch", None)
                batch = new_batch() if new_batch is not None else GraphBatch()
                for event in events:
                    if event.sequence <= last:
                        continue  # already applied before a crash: never apply twice
                    handler(batch, event)
                    last = event.sequence
                self._write(con, batch)
                if rows:
                    _run(con, "UPDATE tracking SET last_seq = ? WHERE name = ?", [last, name])
                else:
                    _run(con, "INSERT INTO tracking VALUES (?, ?)", [name, last])
                _run(con, "COMMIT")
            except BaseException:
                _run(con, "ROLLBACK")
                raise
        return last

    def _write(self, con: duckdb.DuckDBPyConnection, batch: GraphBatch) -> None:
        tables = {}
        if batch.closes:
            items = list(batch.closes.items())
            tables["closes"] = pa.table({"dst": [k[0] for k, _ in items], "type": [k[1] for k, _ in items],
                                         "seq": [v[0] for _, v in items], "time": [v[1] for _, v in items]})
        blobs = [(r[0], r[4], r[8], r[9]) for r in batch.nodes.values() if r[2] == "blob"]
        others = [r for r in batch.nodes.values() if r[2] != "blob"]
        if others:
            tables["new_nodes"] = pa.table(batch.columns(others, NODE_COLUMNS))
        if blobs:
            tables["new_blobs"] = pa.table(batch.columns(blobs, ("nid", "digest", "seq", "time")))
        for name, rows in (("new_flow_edges", batch.edges), ("new_structure_edges", batch.structure_edges),
                           ("new_artifact_edges", batch.artifact_edges)):
            if rows:
                tables[name] = pa.table(batch.columns(rows, EDGE_COLUMNS[:7]), schema=_FLOW_SCHEMA)
        if batch.interval_edges:
            tables["new_interval_edges"] = pa.table(batch.columns(batch.interval_edges, EDGE_COLUMNS),
                                                    schema=_EDGE_SCHEMA)
        if batch.renames:
            tables["renames"] = pa.table({"nid": list(batch.renames), "name": list(batch.renames.values())})
        if batch.statuses:
            tables["new_statuses"] = pa.table(batch.columns(batch.statuses, ("nid", "status", "seq", "time")))
        tables["counts"] = pa.table({"type": [t for t, _ in batch.types], "mapped": [m for _, m in batch.types],
                                     "events": list(batch.types.values())},
                                    schema=pa.schema([("type", pa.string()), ("mapped", pa.bool_()),
                                                      ("events", pa.int64())]))
        for name, table in tables.items():
            con.register(name, table)
        try:
            if "closes" in tables:  # edges from earlier batches; this batch's own were ended in memory
                _run(con, "UPDATE interval_edges SET until_seq = c.seq, until_time = CAST(c.time AS TIMESTAMP) "
                          "FROM closes c WHERE interval_edges.dst = c.dst AND interval_edges.type = c.type "
                          "AND interval_edges.until_seq IS NULL")
            if "new_nodes" in tables:
                _run(con, "INSERT OR IGNORE INTO nodes SELECT nid, key, kind, project, name, version, parent, "
                          "title, seq, CAST(time AS TIMESTAMP) FROM new_nodes")
            if "new_blobs" in tables:
                _run(con, "INSERT OR IGNORE INTO blobs SELECT nid, digest, seq, CAST(time AS TIMESTAMP) FROM new_blobs")
            for name in ("flow_edges", "structure_edges", "artifact_edges"):
                if f"new_{name}" in tables:
                    _run(con, f"INSERT INTO {name} SELECT src, dst, type, project, label, seq, "
                              f"CAST(time AS TIMESTAMP) FROM new_{name}")
            self._copy_walked_artifacts(con, tables, batch)
            if "new_interval_edges" in tables:
                _run(con, "INSERT INTO interval_edges SELECT src, dst, type, project, label, seq, "
                          "CAST(time AS TIMESTAMP), until_seq, CAST(until_time AS TIMESTAMP) FROM new_interval_edges")
            if "renames" in tables:
                _run(con, "UPDATE nodes SET name = r.name FROM renames r WHERE nodes.nid = r.nid")
            if "new_statuses" in tables:
                _run(con, "INSERT INTO statuses SELECT nid, status, seq, CAST(time AS TIMESTAMP) FROM new_statuses")
            if batch.types:
                _run(con, "UPDATE event_types SET events = event_types.events + c.events FROM counts c "
                          "WHERE event_types.type = c.type")
                _run(con, "INSERT INTO event_types SELECT c.* FROM counts c ANTI JOIN event_types t "
                          "ON t.type = c.type")
        finally:
            for name in tables:
                con.unregister(name)

    @staticmethod
    def _copy_walked_artifacts(con: duckdb.DuckDBPyConnection, tables: dict[str, Any], batch: GraphBatch) -> None:
        """Copy into flow_edges the artifact edges whose blob is the content of something: new
        artifact edges of such blobs, and old ones of blobs that became content in this batch."""
        new_content = "new_flow_edges" in tables and any(r[2] == CONTENT_OF for r in batch.edges)
        if not batch.artifact_edges and not new_content:
            return
        first = min(r[5] for r in (*batch.artifact_edges, *batch.edges))
        became = ("OR a.dst IN (SELECT src FROM new_flow_edges WHERE type = 'content_of')" if new_content else "")
        _run(con, f"""INSERT INTO flow_edges SELECT a.* FROM artifact_edges a
            WHERE (a.seq >= ? {became})
              AND a.dst IN (SELECT src FROM flow_edges WHERE type = 'content_of')
              AND NOT EXISTS (SELECT 1 FROM flow_edges f WHERE f.type = 'produced' AND f.seq = a.seq
                              AND f.src = a.src AND f.dst = a.dst)""", [first])

    def reset(self) -> None:
        """Drop every table and create the schema again (for a rebuild by replay)."""
        with self._lock:
            for view in VIEWS_DROP:
                self.con.execute(f"DROP VIEW IF EXISTS {view}")
            for table in TABLES:
                self.con.execute(f"DROP TABLE IF EXISTS {table}")
            self._create()

    def content_hash(self) -> str:
        """A hash of every table's sorted rows: equal read models give equal hashes."""
        digest = hashlib.sha256()
        cur = self.cursor()
        try:
            for table in sorted(TABLES):
                digest.update(table.encode())
                for row in cur.execute(f"SELECT * FROM {table} ORDER BY ALL").fetchall():
                    digest.update(repr(row).encode())
        finally:
            cur.close()
        return digest.hexdigest()

    def close(self) -> None:
        with self._lock:
            self.con.close()


def _run(con: duckdb.DuckDBPyConnection, sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
    """Execute and consume the result: DuckDB keeps a connection busy until its result is read."""
    return con.execute(sql, params or []).fetchall()


_FLOW_SCHEMA = pa.schema([("src", pa.int64()), ("dst", pa.int64()), ("type", pa.string()),
                          ("project", pa.string()), ("label", pa.string()), ("seq", pa.int64()),
                          ("time", pa.string())])
_EDGE_SCHEMA = pa.schema([("src", pa.int64()), ("dst", pa.int64()), ("type", pa.string()),
                          ("project", pa.string()), ("label", pa.string()), ("seq", pa.int64()),
                          ("time", pa.string()), ("until_seq", pa.int64()), ("until_time", pa.string())])
