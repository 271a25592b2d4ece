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
from cairn.services.lineage.projection import EDGE_COLUMNS, NODE_COLUMNS, GraphBatch

SCHEMA = """
CREATE TABLE IF NOT EXISTS tracking (name VARCHAR PRIMARY KEY, last_seq BIGINT NOT NULL);
CREATE TABLE IF NOT EXISTS nodes (
    nid BIGINT PRIMARY KEY, key VARCHAR NOT NULL, kind VARCHAR NOT NULL, project VARCHAR,
    name VARCHAR NOT NULL, version VARCHAR, parent BIGINT, title VARCHAR,
    seq BIGINT NOT NULL, time TIMESTAMP NOT NULL,
    status VARCHAR, status_seq BIGINT, status_time TIMESTAMP);
CREATE TABLE IF NOT EXISTS edges (
    src BIGINT NOT NULL, dst BIGINT NOT NULL, type VARCHAR NOT NULL, project VARCHAR NOT NULL,
    label VARCHAR, seq BIGINT NOT NULL, time TIMESTAMP NOT NULL, until_seq BIGINT, until_time TIMESTAMP);
CREATE TABLE IF NOT EXISTS event_types (
    type VARCHAR PRIMARY KEY, mapped BOOLEAN NOT NULL, events BIGINT NOT NULL);
"""

# The documented views for `cairn lineage sql` (docs/lineage.md): readable references, no ids.
VIEWS = """
CREATE OR REPLACE VIEW lineage_nodes AS
SELECT n.kind, n.project, n.key,
       CASE WHEN n.parent IS NOT NULL THEN coalesce(p.name, n.name) || '@' || n.version ELSE n.name END AS label,
       n.title, n.status, n.seq, n.time
FROM nodes n LEFT JOIN nodes p ON p.nid = n.parent;
CREATE OR REPLACE VIEW lineage_edges AS
SELECT s.key AS src, e.type, d.key AS dst, e.project, e.label, e.seq, e.time, e.until_seq, e.until_time
FROM edges e JOIN nodes s ON s.nid = e.src JOIN nodes d ON d.nid = e.dst;
CREATE OR REPLACE VIEW lineage_event_types AS SELECT type, mapped, events FROM event_types;
"""

TABLES = ("tracking", "nodes", "edges", "event_types")
BatchHandler = Callable[[GraphBatch, Event], None]


class LineageStore:
    """A lineage database file. ``apply`` is called from one writer thread at a time."""

    def __init__(self, path: str | os.PathLike[str], *, threads: int = 2, memory_limit: str = "1GB") -> None:
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
            self.con.execute(SCHEMA)
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
                batch = GraphBatch()
                for event in events:
                    if event.sequence <= last:
                        continue  # already applied before a crash: never apply twice
                    handler(batch, event)
                    last = event.sequence
                self._write(con, batch)
                _run(con, "INSERT INTO tracking VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET "
                            "last_seq = excluded.last_seq", [name, last])
                _run(con, "COMMIT")
            except BaseException:
                _run(con, "ROLLBACK")
                raise
        return last

    def _write(self, con: duckdb.DuckDBPyConnection, batch: GraphBatch) -> None:
        for (dst, edge_type), (seq, time) in batch.closes.items():
            _run(con, "UPDATE edges SET until_seq = ?, until_time = CAST(? AS TIMESTAMP) "
                        "WHERE dst = ? AND type = ? AND until_seq IS NULL", [seq, time, dst, edge_type])
        if batch.nodes:
            _register(con, "new_nodes", pa.table(batch.columns(list(batch.nodes.values()), NODE_COLUMNS)))
            _run(con, "INSERT INTO nodes SELECT b.nid, b.key, b.kind, b.project, b.name, b.version, b.parent, "
                        "b.title, b.seq, CAST(b.time AS TIMESTAMP), NULL, NULL, NULL "
                        "FROM new_nodes b ANTI JOIN nodes n ON n.nid = b.nid")
        if batch.edges:
            _register(con, "new_edges", pa.table(batch.columns(batch.edges, EDGE_COLUMNS), schema=_EDGE_SCHEMA))
            # An edge already open with the same ends and type is the same fact told again.
            _run(con, "INSERT INTO edges SELECT b.src, b.dst, b.type, b.project, b.label, b.seq, "
                        "CAST(b.time AS TIMESTAMP), b.until_seq, CAST(b.until_time AS TIMESTAMP) "
                        "FROM (SELECT * FROM new_edges QUALIFY row_number() OVER "
                        "      (PARTITION BY src, dst, type, until_seq IS NULL ORDER BY seq) = 1 "
                        "      OR until_seq IS NOT NULL) b "
                        "WHERE b.until_seq IS NOT NULL OR NOT EXISTS (SELECT 1 FROM edges e WHERE "
                        "e.src = b.src AND e.dst = b.dst AND e.type = b.type AND e.until_seq IS NULL)")
        if batch.renames:
            _register(con, "renames", pa.table({"nid": list(batch.renames), "name": list(batch.renames.values())}))
            _run(con, "UPDATE nodes SET name = r.name FROM renames r WHERE nodes.nid = r.nid")
        if batch.statuses:
            items = list(batch.statuses.items())
            _register(con, "statuses", pa.table({"nid": [k for k, _ in items], "status": [v[0] for _, v in items],
                                                 "seq": [v[1] for _, v in items], "time": [v[2] for _, v in items]}))
            _run(con, "UPDATE nodes SET status = s.status, status_seq = s.seq, "
                        "status_time = CAST(s.time AS TIMESTAMP) FROM statuses s WHERE nodes.nid = s.nid")
        if batch.types:
            _register(con, "counts", pa.table({"type": [t for t, _ in batch.types],
                                               "mapped": [m for _, m in batch.types],
                                               "events": list(batch.types.values())}))
            _run(con, "INSERT INTO event_types SELECT type, mapped, events FROM counts "
                        "ON CONFLICT (type) DO UPDATE SET events = event_types.events + excluded.events")

        for name in ("new_nodes", "new_edges", "renames", "statuses", "counts"):
            con.unregister(name)

    def reset(self) -> None:
        """Drop every table and create the schema again (for a rebuild by replay)."""
        with self._lock:
            for view in ("lineage_nodes", "lineage_edges", "lineage_event_types"):
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


def _register(con: duckdb.DuckDBPyConnection, name: str, table: pa.Table) -> None:
    con.register(name, table)


_EDGE_SCHEMA = pa.schema([("src", pa.int64()), ("dst", pa.int64()), ("type", pa.string()),
                          ("project", pa.string()), ("label", pa.string()), ("seq", pa.int64()),
                          ("time", pa.string()), ("until_seq", pa.int64()), ("until_time", pa.string())])
