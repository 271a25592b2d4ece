"""The monitor's windows on disk (SQLite, a database of its own beside the projection's): open
windows' running state (counts, latency sketch, the smallest windows' running profiles), closed
windows' rows, the decisions still to make on closed windows, and the position in the inference
stream, all changed in one transaction per batch of messages (a fetch of the consumer's).

So a monitor killed at any moment resumes from its stored position: what was consumed before the
kill is in the open windows exactly once, what was not is read again. A closed window's rules are
queued (``pending``) in the transaction that closes it, and the queue entry is dropped only
after the rules were decided, so a kill between the two decides them again (the alert aggregate
makes that second decision a no-op).

These windows are a projection of the inference stream, not of the event log: an event-log
rebuild leaves them alone.
"""

from __future__ import annotations

import json
import logging
import math
import sqlite3
from collections.abc import Callable, Iterable
from itertools import repeat
from pathlib import Path
from typing import Any

import numpy as np

from cairn.kernel.store import SqliteStore
from cairn.services.monitor.samples import Label, Requests
from cairn.services.monitor.windows import (
    ERROR_STATUS,
    LatencySketch,
    OpenWindow,
    Reference,
    drift_summary,
    latency_keys,
    merge_profiles,
    merge_two,
    performance,
    profile_from_json,
    profile_tables,
    profile_window,
    window_start,
    window_table,
)

log = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS position (name TEXT PRIMARY KEY, seq INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS open_windows (
    project TEXT NOT NULL, deployment TEXT NOT NULL, size TEXT NOT NULL, start REAL NOT NULL,
    seconds INTEGER NOT NULL, requests INTEGER NOT NULL, errors INTEGER NOT NULL, latency TEXT NOT NULL,
    PRIMARY KEY (project, deployment, size, start));
CREATE TABLE IF NOT EXISTS windows (
    project TEXT NOT NULL, deployment TEXT NOT NULL, size TEXT NOT NULL, start REAL NOT NULL, end REAL NOT NULL,
    requests INTEGER NOT NULL, errors INTEGER NOT NULL, error_rate REAL, latency_p50_ms REAL,
    latency_p95_ms REAL, latency_p99_ms REAL, drift TEXT, performance TEXT, reference TEXT, profile BLOB,
    PRIMARY KEY (project, deployment, size, start));
CREATE TABLE IF NOT EXISTS window_profiles (
    project TEXT NOT NULL, deployment TEXT NOT NULL, start REAL NOT NULL, reference TEXT NOT NULL, profile BLOB NOT NULL,
    PRIMARY KEY (project, deployment, start));
CREATE TABLE IF NOT EXISTS window_batches (
    project TEXT NOT NULL, deployment TEXT NOT NULL, start REAL NOT NULL, seq INTEGER NOT NULL, data BLOB NOT NULL,
    PRIMARY KEY (project, deployment, start, seq));
CREATE TABLE IF NOT EXISTS pending (
    project TEXT NOT NULL, deployment TEXT NOT NULL, size TEXT NOT NULL, start REAL NOT NULL, end REAL NOT NULL,
    PRIMARY KEY (project, deployment, size, start));
CREATE TABLE IF NOT EXISTS watermarks (
    project TEXT NOT NULL, deployment TEXT NOT NULL, time REAL NOT NULL, PRIMARY KEY (project, deployment));
CREATE TABLE IF NOT EXISTS predictions (
    project TEXT NOT NULL, deployment TEXT NOT NULL, request_id TEXT NOT NULL, prediction TEXT NOT NULL,
    time REAL NOT NULL, labelled INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (project, deployment, request_id));
DROP INDEX IF EXISTS predictions_by_time;
CREATE TABLE IF NOT EXISTS prediction_marks (time REAL NOT NULL, last_rowid INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS window_labels (
    project TEXT NOT NULL, deployment TEXT NOT NULL, size TEXT NOT NULL, start REAL NOT NULL, request_id TEXT NOT NULL,
    prediction TEXT NOT NULL, label TEXT NOT NULL, PRIMARY KEY (project, deployment, size, start, request_id));
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""
WINDOW_COLUMNS = ("project", "deployment", "size", "start", "end", "requests", "errors", "error_rate",
                  "latency_p50_ms", "latency_p95_ms", "latency_p99_ms", "drift", "performance")
Key = tuple[str, str, str, float]  # project, deployment, size, start
# one inference message: stream sequence, project, deployment, its requests, its decoded Arrow table
# (None: not samples), its labels (a feedback message)
Batch = tuple[int, str, str, Requests | None, Any, list[Label]]


class WindowStore(SqliteStore):
    """Open and closed windows of every deployment, for the sizes given (label -> seconds)."""

    def __init__(self, path: str | Path, sizes: dict[str, int], grace_s: float,
                 references: Callable[[str, str], Reference | None] | None = None,
                 label_horizon_s: float = 86400.0) -> None:
        super().__init__(path, SCHEMA)
        self.sizes = sizes
        self.grace_s = grace_s
        self.smallest = next(iter(sizes))
        self.references = references  # a deployment's reference profile, for drift (None: no drift)
        self.label_horizon_s = label_horizon_s  # how long a prediction waits for its label
        # running profiles as last written and parsed, by window: used only while the stored bytes
        # are these (a rolled back batch left others), so parsing costs nothing per batch
        self._parsed: dict[tuple[str, str, float], tuple[bytes, Any]] = {}
        with self.transaction() as conn:  # predictions kept before marks existed: one mark covers them
            conn.execute("INSERT INTO prediction_marks(time, last_rowid) SELECT max(time), max(rowid) FROM predictions "
                         "WHERE NOT EXISTS (SELECT 1 FROM prediction_marks) HAVING count(*) > 0")

    # --- writing (the consumer's task only) ---

    def position(self) -> int:
        row = self.query_one("SELECT seq FROM position WHERE name='inference'")
        return int(row[0]) if row else 0

    def ingest(self, batches: Iterable[Batch]) -> int:
        """Count messages (``Batch``) into their windows, profile each smallest window's new rows
        on its deployment's reference edges (once per batch and window, merged into its running
        profile), keep predictions for their labels and move the position, in one transaction;
        then close the windows that samples at or past their end + grace show to be over.
        Messages at or below the stored position are skipped (read again after a kill). Returns
        the new position."""
        with self.transaction() as conn:
            position = _position(conn)
            cache: dict[Key, OpenWindow] = {}
            touched: dict[tuple[str, str], float] = {}
            rows: dict[Key, list[Any]] = {}  # smallest open windows -> this batch's rows of them
            marks: list[float] = []  # the newest time of each message's kept predictions
            late = 0
            for seq, project, deployment, requests, table, labels in batches:
                if seq <= position:
                    continue
                position = seq
                if requests is not None and len(requests):
                    late += self._count(conn, cache, rows, touched, marks, project, deployment, requests, table)
                for label in labels:
                    self._label(conn, cache, project, deployment, label)
            for window in cache.values():
                _save_open(conn, window)
            if marks:
                conn.execute("INSERT INTO prediction_marks(time, last_rowid) SELECT ?, max(rowid) FROM predictions",
                             (max(marks),))
            self._profile(conn, rows)
            for (project, deployment), mark in touched.items():
                conn.execute("INSERT INTO watermarks(project, deployment, time) VALUES(?, ?, ?) ON CONFLICT"
                             "(project, deployment) DO UPDATE SET time=max(time, excluded.time)",
                             (project, deployment, mark))
                self._close(conn, "project=? AND deployment=? AND start + seconds + ? <= ?",
                            (project, deployment, self.grace_s, mark))
            if late:
                _count(conn, "late_requests", late)
            conn.execute("INSERT INTO position(name, seq) VALUES('inference', ?) ON CONFLICT(name) "
                         "DO UPDATE SET seq=excluded.seq", (position,))
        return position

    def _count(self, conn: sqlite3.Connection, cache: dict[Key, OpenWindow], rows: dict[Key, list[Any]],
               touched: dict[tuple[str, str], float], marks: list[float], project: str, deployment: str,
               requests: Requests, table: Any) -> int:
        """One message's requests into their open windows (a window per size and start), its rows
        noted for the smallest windows' profiles, its predictions kept; returns how many of its
        requests were late (a window of theirs had closed already)."""
        was_late = np.zeros(len(requests), dtype=bool)
        errors, keys = requests.status >= ERROR_STATUS, latency_keys(requests.latency_ms)
        for size, seconds in self.sizes.items():
            starts = np.floor(requests.time / seconds) * seconds
            first = float(starts[0])
            groups = [first] if bool((starts == first).all()) else np.unique(starts).tolist()
            for start in groups:
                key = (project, deployment, size, float(start))
                window = cache.get(key) or _load_open(conn, key, seconds)
                mask = starts == start if len(groups) > 1 else None
                if window is None:  # its window closed already: counted as late, not in a row
                    was_late |= mask if mask is not None else True
                    continue
                cache[key] = window
                window.add_many(errors if mask is None else errors[mask], keys if mask is None else keys[mask])
                if size == self.smallest and table is not None:
                    rows.setdefault(key, []).append(window_table(table, window.start, window.end))
        newest = float(requests.time.max())
        touched[(project, deployment)] = max(touched.get((project, deployment), -math.inf), newest)
        kept = list(zip(repeat(project), repeat(deployment), requests.request_id, requests.prediction,
                        requests.time.tolist()))
        if None in requests.prediction or "" in requests.request_id:  # nothing to join a label to
            kept = [row for row in kept if row[3] is not None and row[2]]
        if kept:
            conn.executemany("INSERT OR IGNORE INTO predictions(project, deployment, request_id, prediction, time) "
                             "VALUES(?, ?, ?, ?, ?)", kept)
            marks.append(newest)  # at least the newest kept: a mark never expires early
        return int(np.count_nonzero(was_late))

    def _profile(self, conn: sqlite3.Connection, rows: dict[Key, list[Any]]) -> None:
        """Merge this batch's rows of each smallest open window into its running profile, on the
        deployment's reference edges (no reference: nothing to profile). A failure costs that
        window's drift (its profile is dropped and marked), never the batch."""
        for (project, deployment, _, start), tables in rows.items():
            reference = self.references(project, deployment) if self.references else None
            if reference is None:
                continue
            where = (project, deployment, start)
            row = conn.execute("SELECT reference, profile FROM window_profiles WHERE project=? AND deployment=? AND "
                               "start=?", where).fetchone()
            if row is not None and (row["reference"] != reference.digest or not row["profile"]):
                continue  # the reference changed while the window was open, or a profile failed: no drift
            try:
                stored = row["profile"] if row is not None else None
                parsed = self._parsed.get(where)  # what this process last wrote, parsed
                current = parsed[1] if parsed is not None and parsed[0] == stored else \
                    profile_from_json(stored) if stored else None
                merged = merge_two(current, profile_tables(tables, reference))
                data = merged.to_json() if merged is not None else None
            except Exception as err:  # noqa: BLE001 - the window closes without its drift
                log.warning("monitor: profile of %s/%s window at %s failed: %r", project, deployment, start, err)
                data, merged = b"", None
            if data is not None:
                conn.execute("INSERT OR REPLACE INTO window_profiles(project, deployment, start, reference, profile) "
                             "VALUES(?, ?, ?, ?, ?)", (*where, reference.digest, data))
                self._parsed[where] = (data, merged)

    def _label(self, conn: sqlite3.Connection, cache: dict[Key, OpenWindow], project: str, deployment: str,
               label: Label) -> None:
        """A label joins its request's prediction into the windows of the label's arrival time
        (live performance is by when the truth became known); the first label of a request
        counts, and one whose prediction is unknown (never sampled, or past the horizon) is
        counted apart."""
        row = conn.execute("SELECT prediction, labelled FROM predictions WHERE project=? AND deployment=? AND "
                           "request_id=?", (project, deployment, label.request_id)).fetchone()
        if row is None or row["labelled"]:
            if row is None:
                _count(conn, "unmatched_labels")
            return
        conn.execute("UPDATE predictions SET labelled=1 WHERE project=? AND deployment=? AND request_id=?",
                     (project, deployment, label.request_id))
        for size, seconds in self.sizes.items():
            key = (project, deployment, size, window_start(label.time, seconds))
            window = cache.get(key) or _load_open(conn, key, seconds)
            if window is None:
                continue  # its window closed already
            cache[key] = window
            conn.execute("INSERT OR IGNORE INTO window_labels(project, deployment, size, start, request_id, "
                         "prediction, label) VALUES(?, ?, ?, ?, ?, ?, ?)", (*key, label.request_id, row["prediction"],
                                                                            label.label))

    def close_due(self, now: float) -> int:
        """Close every open window whose end + grace the wall clock has passed (a deployment that
        went quiet still has its last windows closed), and forget predictions older than the
        label horizon; returns how many windows closed."""
        with self.transaction() as conn:
            _forget_predictions(conn, now - self.label_horizon_s)
            return self._close(conn, "start + seconds + ? <= ?", (self.grace_s, now))

    def _close(self, conn: sqlite3.Connection, where: str, params: tuple[Any, ...]) -> int:
        # smallest first: a larger window's drift merges the profiles of the smaller ones it holds
        rows = conn.execute(f"SELECT * FROM open_windows WHERE {where} ORDER BY seconds, start", params).fetchall()
        for row in rows:
            summary = _open_window(row).summary()
            reference, profile = self._drift(conn, row, summary)
            summary["performance"] = self._performance(conn, row)
            summary["drift"], summary["performance"] = (json.dumps(summary[k]) if summary[k] is not None else None
                                                        for k in ("drift", "performance"))
            columns = (*WINDOW_COLUMNS, "reference", "profile")
            conn.execute(f"INSERT OR REPLACE INTO windows({', '.join(columns)}) "
                         f"VALUES({', '.join('?' * len(columns))})",
                         [*(summary[c] for c in WINDOW_COLUMNS), reference, profile])
            if row["size"] == self.smallest:
                self._parsed.pop((row["project"], row["deployment"], row["start"]), None)
                for table in ("window_batches", "window_profiles"):
                    conn.execute(f"DELETE FROM {table} WHERE project=? AND deployment=? AND start=?",
                                 (row["project"], row["deployment"], row["start"]))
            conn.execute("INSERT OR IGNORE INTO pending(project, deployment, size, start, end) VALUES(?, ?, ?, ?, ?)",
                         (row["project"], row["deployment"], row["size"], row["start"], summary["end"]))
            conn.execute("DELETE FROM open_windows WHERE project=? AND deployment=? AND size=? AND start=?",
                         (row["project"], row["deployment"], row["size"], row["start"]))
        return len(rows)

    def _drift(self, conn: sqlite3.Connection, row: sqlite3.Row,
               summary: dict[str, Any]) -> tuple[str | None, bytes | None]:
        """Fill in the closing window's drift; returns the reference digest and the window's
        profile (kept for the larger windows). A failure costs the drift, never the window."""
        reference = self.references(row["project"], row["deployment"]) if self.references else None
        if reference is None:
            return None, None
        try:
            if row["size"] == self.smallest:
                where = (row["project"], row["deployment"], row["start"])
                kept = conn.execute("SELECT reference, profile FROM window_profiles WHERE project=? AND deployment=? "
                                    "AND start=?", where).fetchone()
                if kept is not None and (kept["reference"] != reference.digest or not kept["profile"]):
                    return reference.digest, None  # profiled on another reference's edges, or failed
                messages = [r[0] for r in conn.execute(  # kept raw by a monitor from before running profiles
                    "SELECT data FROM window_batches WHERE project=? AND deployment=? AND start=? ORDER BY seq", where)]
                current = merge_two(profile_from_json(kept["profile"]) if kept is not None else None,
                                    profile_window(messages, row["start"], summary["end"], reference))
            else:
                current = merge_profiles([r[0] for r in conn.execute(
                    "SELECT profile FROM windows WHERE project=? AND deployment=? AND size=? AND start>=? AND end<=? "
                    "AND reference=? AND profile IS NOT NULL ORDER BY start",
                    (row["project"], row["deployment"], self.smallest, row["start"], summary["end"],
                     reference.digest))])
            summary["drift"] = drift_summary(current, reference)
        except Exception as err:  # noqa: BLE001 - the window closes without its drift
            log.warning("monitor: drift of %s/%s %s window at %s failed: %r", row["project"], row["deployment"],
                        row["size"], row["start"], err)
            return reference.digest, None
        return reference.digest, current.to_json() if current is not None and row["size"] == self.smallest else None

    def _performance(self, conn: sqlite3.Connection, row: sqlite3.Row) -> dict[str, Any] | None:
        key = (row["project"], row["deployment"], row["size"], row["start"])
        where = "project=? AND deployment=? AND size=? AND start=?"
        pairs = [(r[0], r[1]) for r in conn.execute(f"SELECT prediction, label FROM window_labels WHERE {where}", key)]
        conn.execute(f"DELETE FROM window_labels WHERE {where}", key)
        try:
            return performance(pairs)
        except (ValueError, TypeError) as err:  # labels the metrics cannot take: the window closes without
            log.warning("monitor: performance of %s/%s %s window at %s failed: %r", *key, err)
            return None

    def pending(self) -> list[dict[str, Any]]:
        """Closed windows whose rules are still to be decided, oldest first."""
        return [dict(r) for r in self.query("SELECT * FROM pending ORDER BY end, project, deployment, size")]

    def decided(self, item: dict[str, Any]) -> None:
        with self.transaction() as conn:
            conn.execute("DELETE FROM pending WHERE project=? AND deployment=? AND size=? AND start=?",
                         (item["project"], item["deployment"], item["size"], item["start"]))

    # --- reading ---

    def history(self, project: str, deployment: str, size: str, until_end: float, n: int) -> list[dict[str, Any]]:
        """The last ``n`` closed windows ending at or before ``until_end``, oldest first."""
        rows = self.query("SELECT * FROM windows WHERE project=? AND deployment=? AND size=? AND end <= ? "
                          "ORDER BY start DESC LIMIT ?", (project, deployment, size, until_end, n))
        return [window_row(r) for r in reversed(rows)]

    def closed(self, project: str, deployment: str, size: str, since: float, until: float) -> list[dict[str, Any]]:
        rows = self.query("SELECT * FROM windows WHERE project=? AND deployment=? AND size=? AND start >= ? "
                          "AND start < ? ORDER BY start", (project, deployment, size, since, until))
        return [window_row(r) for r in rows]

    def latest(self, project: str, deployment: str) -> dict[str, dict[str, Any]]:
        """The newest closed window of each size."""
        out = {}
        for size in self.sizes:
            row = self.query_one("SELECT * FROM windows WHERE project=? AND deployment=? AND size=? "
                                 "ORDER BY start DESC LIMIT 1", (project, deployment, size))
            if row is not None:
                out[size] = window_row(row)
        return out

    def open_windows(self, project: str, deployment: str) -> list[dict[str, Any]]:
        rows = self.query("SELECT * FROM open_windows WHERE project=? AND deployment=? ORDER BY size, start",
                          (project, deployment))
        return [{**_open_window(r).summary(), "open": True} for r in rows]

    def counter(self, name: str) -> int:
        row = self.query_one("SELECT value FROM counters WHERE name=?", (name,))
        return int(row[0]) if row else 0


def window_row(row: sqlite3.Row) -> dict[str, Any]:
    out = {c: row[c] for c in WINDOW_COLUMNS}
    for name in ("drift", "performance"):
        out[name] = json.loads(out[name]) if out[name] else None
    return out


def _count(conn: sqlite3.Connection, name: str, n: int = 1) -> None:
    conn.execute("INSERT INTO counters(name, value) VALUES(?, ?) ON CONFLICT(name) DO UPDATE SET "
                 "value=value+excluded.value", (name, n))


def _forget_predictions(conn: sqlite3.Connection, before: float) -> None:
    """Delete the predictions older than ``before`` without an index on time (one more B-tree
    per sampled request was a fifth of the ingest's cost): each ingest batch notes the newest
    time of the predictions it kept and the largest rowid after it (``prediction_marks``; rowids
    grow as rows are added), so the marks that are all older than ``before``, oldest first,
    bound a rowid range of old rows. Within it only rows older than ``before`` go, so nothing is
    forgotten early; a row may stay past the horizon while an earlier batch's mark is younger."""
    expired = conn.execute("SELECT rowid, time, last_rowid FROM prediction_marks ORDER BY rowid LIMIT 10000").fetchall()
    upto, last = None, None
    for mark in expired:
        if mark["time"] >= before:
            break
        upto, last = mark["rowid"], mark["last_rowid"] if last is None else max(last, mark["last_rowid"] or 0)
    if upto is None:
        return
    if last is not None:
        conn.execute("DELETE FROM predictions WHERE rowid <= ? AND time < ?", (last, before))
    conn.execute("DELETE FROM prediction_marks WHERE rowid <= ?", (upto,))


def _position(conn: sqlite3.Connection) -> int:
    row = conn.execute("SELECT seq FROM position WHERE name='inference'").fetchone()
    return int(row[0]) if row else 0


def _open_window(row: sqlite3.Row) -> OpenWindow:
    return OpenWindow(row["project"], row["deployment"], row["size"], row["start"], row["seconds"], row["requests"],
                      row["errors"], LatencySketch.from_json(json.loads(row["latency"])))


def _load_open(conn: sqlite3.Connection, key: Key, seconds: int) -> OpenWindow | None:
    """The open window for ``key``: stored, new, or None when that window has closed already."""
    row = conn.execute("SELECT * FROM open_windows WHERE project=? AND deployment=? AND size=? AND start=?",
                       key).fetchone()
    if row is not None:
        return _open_window(row)
    if conn.execute("SELECT 1 FROM windows WHERE project=? AND deployment=? AND size=? AND start=?",
                    key).fetchone() is not None:
        return None
    return OpenWindow(*key, seconds=seconds)


def _save_open(conn: sqlite3.Connection, window: OpenWindow) -> None:
    window.flush()
    conn.execute("INSERT OR REPLACE INTO open_windows(project, deployment, size, start, seconds, requests, errors, "
                 "latency) VALUES(?, ?, ?, ?, ?, ?, ?, ?)",
                 (window.project, window.deployment, window.size, window.start, window.seconds, window.requests,
                  window.errors, json.dumps(window.latency.to_json())))
