"""SQLite storage for projections: the read model and its tracking position in one database,
updated in one transaction per batch, so a crash neither loses nor double-applies an event."""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from cairn.kernel.envelope import Event
from cairn.kernel.parking import ParkedEvent, apply_control, apply_guarded, park_event, parked_count

KERNEL_SCHEMA = """
CREATE TABLE IF NOT EXISTS tracking (name TEXT PRIMARY KEY, last_seq INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS aggregates (
    subject TEXT PRIMARY KEY, last_seq INTEGER NOT NULL, state TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS idempotency (
    key TEXT PRIMARY KEY, seq INTEGER NOT NULL, subject TEXT NOT NULL, aggregate_id TEXT NOT NULL,
    type TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS parked_events (
    seq INTEGER PRIMARY KEY, subject TEXT NOT NULL, type TEXT NOT NULL, event TEXT NOT NULL,
    error TEXT NOT NULL);
"""

EventHandler = Callable[[sqlite3.Connection, Event], None]
Evolve = Callable[[dict[str, Any] | None, str, dict[str, Any]], dict[str, Any]]


@runtime_checkable
class ReadModel(Protocol):
    """What the kernel asks of any read model, whatever holds it (SQLite, DuckDB, Parquet files):
    how far into its stream it is, a hash to compare two copies, and closing it."""

    def last_sequence(self, name: str = "main") -> int: ...

    def content_hash(self) -> str: ...

    def close(self) -> None: ...


@runtime_checkable
class ProjectionStore(ReadModel, Protocol):
    """A read model of the event log that a :class:`~cairn.kernel.projection.ProjectionRunner`
    keeps: it applies a batch and its position in one transaction, and drops everything for a
    rebuild by replay (SQLite's :class:`SqliteStore`, the lineage service's DuckDB store)."""

    def apply(self, events: list[Event], handler: Any, name: str = "main") -> int: ...

    def reset(self) -> None: ...


@runtime_checkable
class ParkingStore(ProjectionStore, Protocol):
    """A projection store that can set a poison event aside and go on (``parked_events``)."""

    def apply_parking(self, events: list[Event], handler: EventHandler, *, service: str = "",
                      name: str = "main", park: bool = True) -> tuple[int, list[ParkedEvent]]: ...

    def parked_count(self) -> int: ...

    def reader(self) -> sqlite3.Connection: ...


class SqliteStore:
    """A projection's SQLite database: one writer connection, a connection per reading thread."""

    def __init__(self, path: str | os.PathLike[str], schema: str) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.schema = schema
        self._local = threading.local()
        self._writer = self._connect()
        self._create()

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=30)
        conn.execute("PRAGMA journal_mode=WAL")
        # NORMAL: a commit is atomic but may not survive a power cut. That loses nothing: the
        # read model and its tracking position roll back together, and the consumer restarts
        # from that position, so the log replays what was lost (the log itself is fsynced).
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA foreign_keys=OFF")
        conn.row_factory = sqlite3.Row
        return conn

    def _create(self) -> None:
        self._writer.executescript(KERNEL_SCHEMA + self.schema)

    def _statements(self) -> list[str]:
        """The schema script as single statements, to run inside one transaction."""
        statements, pending = [], ""
        for line in (KERNEL_SCHEMA + self.schema).splitlines(keepends=True):
            pending += line
            if sqlite3.complete_statement(pending):
                statements.append(pending)
                pending = ""
        return statements

    def reader(self) -> sqlite3.Connection:
        """A connection for the calling thread (readers never block the writer in WAL mode)."""
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect()
            self._local.conn = conn
        return conn

    def query(self, sql: str, params: Iterable[Any] = ()) -> list[sqlite3.Row]:
        return self.reader().execute(sql, tuple(params)).fetchall()

    def query_one(self, sql: str, params: Iterable[Any] = ()) -> sqlite3.Row | None:
        return self.reader().execute(sql, tuple(params)).fetchone()

    @contextmanager
    def snapshot(self) -> Iterator[sqlite3.Connection]:
        """The calling thread's reader inside one read transaction: every query in it sees the
        same committed state (a decision and the position it was made at must agree)."""
        conn = self.reader()
        conn.execute("BEGIN")
        try:
            yield conn
        finally:
            conn.execute("COMMIT")

    def last_sequence(self, name: str = "main") -> int:
        row = self._writer.execute("SELECT last_seq FROM tracking WHERE name=?", (name,)).fetchone()
        return int(row[0]) if row else 0

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        conn = self._writer
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def apply(self, events: list[Event], handler: EventHandler, name: str = "main") -> int:
        """Apply events newer than the tracking position, and move it, in one transaction."""
        return self.apply_parking(events, handler, name=name, park=False)[0]

    def parked_count(self) -> int:
        return parked_count(self.reader())

    def apply_parking(self, events: list[Event], handler: EventHandler, *, service: str = "",
                      name: str = "main", park: bool = True) -> tuple[int, list[ParkedEvent]]:
        """Like :meth:`apply`, but an event the handler cannot apply is parked (rolled back to
        before it, stored with its error in ``parked_events``) and the rest go on, all in one
        transaction with the position. Slower (a savepoint and a snapshot flush per event): the
        runner uses it only for a batch that failed whole. ``service``'s own control events
        (``projection.event_retried``/``event_skipped``) act on its parked events here, so a
        rebuild replays the admins' decisions too. Returns the position and what was parked."""
        parked: list[ParkedEvent] = []
        with self.transaction() as conn:
            row = conn.execute("SELECT last_seq FROM tracking WHERE name=?", (name,)).fetchone()
            last = int(row[0]) if row else 0
            begin_batch = getattr(handler, "begin_batch", None)
            if begin_batch is not None:
                begin_batch()  # drop anything cached by a batch that was rolled back
            for event in events:
                if event.sequence <= last:
                    continue  # already applied before a crash: never apply twice
                if service and apply_control(conn, handler, event, service):
                    pass
                elif not park:
                    handler(conn, event)
                else:
                    error = apply_guarded(conn, handler, event)
                    if error is not None:
                        parked.append(park_event(conn, event, error))
                last = event.sequence
            end_batch = getattr(handler, "end_batch", None)
            if end_batch is not None:
                end_batch(conn)
            conn.execute(
                "INSERT INTO tracking(name, last_seq) VALUES(?, ?) "
                "ON CONFLICT(name) DO UPDATE SET last_seq=excluded.last_seq",
                (name, last),
            )
        return last, parked

    def reset(self) -> None:
        """Drop every table and create the schema again (for a rebuild by replay), in one
        transaction: a reader meanwhile sees the old tables or the new empty ones, never none."""
        with self.transaction() as conn:
            tables = [r[0] for r in conn.execute(
                "SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%'")]
            for table in tables:
                conn.execute(f'DROP TABLE IF EXISTS "{table}"')
            for statement in self._statements():
                conn.execute(statement)

    def content_hash(self) -> str:
        """A hash of every table's sorted rows: equal read models give equal hashes."""
        digest = hashlib.sha256()
        conn = self._writer
        tables = sorted(r[0] for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%'"))
        for table in tables:
            digest.update(table.encode())
            rows = [json.dumps(list(r), default=str) for r in conn.execute(f'SELECT * FROM "{table}"')]
            for row in sorted(rows):
                digest.update(row.encode())
        return digest.hexdigest()

    def close(self) -> None:
        self._writer.close()


# Helpers the projections use for the kernel tables.

def load_state(conn: sqlite3.Connection, subject: str) -> tuple[int, dict[str, Any] | None]:
    row = conn.execute("SELECT last_seq, state FROM aggregates WHERE subject=?", (subject,)).fetchone()
    if row is None:
        return 0, None
    return int(row[0]), json.loads(row[1])


def save_state(conn: sqlite3.Connection, subject: str, seq: int, state: dict[str, Any]) -> None:
    conn.execute(
        "INSERT INTO aggregates(subject, last_seq, state) VALUES(?, ?, ?) "
        "ON CONFLICT(subject) DO UPDATE SET last_seq=excluded.last_seq, state=excluded.state",
        (subject, seq, json.dumps(state, separators=(",", ":"))),
    )


def record_idempotency(conn: sqlite3.Connection, event: Event) -> None:
    if event.idempotency_key and event.idempotency_key != event.id:
        conn.execute(
            "INSERT OR IGNORE INTO idempotency(key, seq, subject, aggregate_id, type) "
            "VALUES(?, ?, ?, ?, ?)",
            (event.idempotency_key, event.sequence, event.subject, event.aggregate_id, event.type),
        )


class EventHandlers(dict[str, EventHandler]):
    """A service's view handlers by event type, filled with the ``handles`` decorator."""

    def handles(self, *event_types: str) -> Callable[[EventHandler], EventHandler]:
        def register(fn: EventHandler) -> EventHandler:
            for event_type in event_types:
                self[event_type] = fn
            return fn

        return register


class SnapshotProjection:
    """A projection's entry point: for each event with a handler, fold the aggregate snapshot
    (when the service owns the aggregate: it has an evolver), remember the idempotency key, then
    update the views. Snapshots are cached for the length of a batch and written once at its
    end, in the same transaction; events without a handler belong to other services."""

    def __init__(self, evolvers: dict[str, Evolve], handlers: EventHandlers) -> None:
        self.evolvers = evolvers
        self.handlers = handlers
        self._snapshots: dict[str, tuple[int, dict[str, Any]]] = {}

    def __call__(self, conn: sqlite3.Connection, event: Event) -> None:
        handler = self.handlers.get(event.type)
        if handler is None:
            return
        evolve = self.evolvers.get(event.aggregate)
        if evolve is not None:
            self.fold(conn, event.subject, evolve, event)
            record_idempotency(conn, event)
        handler(conn, event)

    def fold(self, conn: sqlite3.Connection, subject: str, evolve: Evolve, event: Event, *,
             advance: bool = True) -> None:
        """Fold ``event`` into ``subject``'s snapshot. ``advance=False`` folds an event that is
        not on that subject (an upcaster moving an old event to the aggregate that owns it now):
        the snapshot's position stays the subject's real last sequence, which appends expect."""
        cached = self._snapshots.get(subject)
        seq, state = cached if cached is not None else load_state(conn, subject)
        # max: a parked event retried later is older than the subject's last event
        position = max(seq, event.sequence) if advance else seq
        self._snapshots[subject] = (position, evolve(state, event.type, event.data))

    def begin_batch(self) -> None:
        self._snapshots.clear()

    def end_batch(self, conn: sqlite3.Connection) -> None:
        for subject, (sequence, state) in self._snapshots.items():
            save_state(conn, subject, sequence, state)
        self._snapshots.clear()
