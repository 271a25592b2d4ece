"""The metrics read model's bookkeeping in SQLite: which stream messages were written (by message
id, so a redelivered or retried batch is written once), which Parquet parts make up each run, and
summaries (last value with its step and time, min, max, count) per run and key, each flagged until it has been announced as a ``metric.summarized`` event (see
``announce.py``).

The SQLite commit is the commit point of a write: a Parquet part renamed into place but not yet
listed here is an orphan and is deleted on start (its messages were never acked, so they come back).
"""

from __future__ import annotations

import hashlib
import json
import math
import sqlite3
from pathlib import Path
from typing import Any

from cairn.kernel.store import SqliteStore

SCHEMA = """
CREATE TABLE IF NOT EXISTS applied (msg_id TEXT PRIMARY KEY, seq INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS parts (
  project TEXT NOT NULL, run_id TEXT NOT NULL, file TEXT NOT NULL, seq_lo INTEGER NOT NULL,
  seq_hi INTEGER NOT NULL, rows INTEGER NOT NULL, PRIMARY KEY (project, run_id, file));
CREATE TABLE IF NOT EXISTS summaries (
  project TEXT NOT NULL, run_id TEXT NOT NULL, key TEXT NOT NULL, count INTEGER NOT NULL,
  min REAL, max REAL, last REAL, last_step INTEGER NOT NULL, last_seq INTEGER NOT NULL,
  last_time REAL, announced INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (project, run_id, key));
"""
# Only the few rows a write changed are unannounced at any time: a partial index finds them without a scan.
UNANNOUNCED_INDEX = "CREATE INDEX IF NOT EXISTS summaries_unannounced ON summaries(project) WHERE announced = 0"


RUNS_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (project TEXT NOT NULL, run_id TEXT NOT NULL, PRIMARY KEY (project, run_id));
CREATE TABLE IF NOT EXISTS announced (
  project TEXT NOT NULL, run_id TEXT NOT NULL, key TEXT NOT NULL, count INTEGER NOT NULL,
  PRIMARY KEY (project, run_id, key));
"""


class KnownRuns(SqliteStore):
    """The projection's read model (``runs.sqlite3``, apart from the Parquet bookkeeping, so a
    rebuild of the projection never touches written points)."""

    def __init__(self, path: Path) -> None:
        from cairn.services.metrics.traces_view import TRACES_SCHEMA

        super().__init__(path, RUNS_SCHEMA + TRACES_SCHEMA)

    def has(self, project: str, run_id: str) -> bool:
        return self.query_one("SELECT 1 FROM runs WHERE project=? AND run_id=?", (project, run_id)) is not None

    def announced_counts(self, project: str, rows: list[dict[str, Any]]) -> dict[tuple[str, str], int]:
        """The highest count the log's ``metric.summarized`` events gave each of these summaries
        (``(run_id, key)``; absent: never announced), as this replica's projection has seen them."""
        out: dict[tuple[str, str], int] = {}
        conn = self.reader()
        for row in rows:
            found = conn.execute("SELECT count FROM announced WHERE project=? AND run_id=? AND key=?",
                                 (project, row["run_id"], row["key"])).fetchone()
            if found is not None:
                out[(row["run_id"], row["key"])] = int(found[0])
        return out


def _num(value: float | None) -> float | None | str:
    """SQLite stores NaN as NULL; keep NaN and infinities distinct by storing them as text."""
    if value is None:
        return None
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return value


def _back(value: Any) -> float | None:
    return None if value is None else float(value)


class MetricsStore:
    """SQLite next to the Parquet files (WAL, synchronous=FULL: a commit is durable)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.executescript(SCHEMA)
        columns = {r[1] for r in self.db.execute("PRAGMA table_info(summaries)")}
        if "last_time" not in columns:  # a store made before summaries kept the last point's time
            self.db.execute("ALTER TABLE summaries ADD COLUMN last_time REAL")
        if "announced" not in columns:  # a store made before summaries were events: all of it is announced on start
            self.db.execute("ALTER TABLE summaries ADD COLUMN announced INTEGER NOT NULL DEFAULT 0")
        self.db.execute(UNANNOUNCED_INDEX)

    def close(self) -> None:
        self.db.close()

    # the ReadModel protocol: this read model's stream is the metrics stream, and its position
    # the last metrics message written
    def last_sequence(self, name: str = "main") -> int:
        row = self.db.execute("SELECT MAX(seq) FROM applied").fetchone()
        return int(row[0] or 0)

    def content_hash(self) -> str:
        """A hash of the parts and summaries (equal bookkeeping hashes equal)."""
        digest = hashlib.sha256()
        for table, order in (("parts", "project, run_id, file"), ("summaries", "project, run_id, key")):
            digest.update(table.encode())
            for row in self.db.execute(f"SELECT * FROM {table} ORDER BY {order}"):
                digest.update(json.dumps(list(row), default=str).encode())
        return digest.hexdigest()

    def applied_ids(self, msg_ids: list[str]) -> set[str]:
        """Which of these message ids were already written."""
        found: set[str] = set()
        for start in range(0, len(msg_ids), 500):
            chunk = msg_ids[start:start + 500]
            rows = self.db.execute(f"SELECT msg_id FROM applied WHERE msg_id IN ({','.join('?' * len(chunk))})",
                                   chunk).fetchall()
            found.update(r[0] for r in rows)
        return found

    def commit_part(self, project: str, run_id: str, file: str, seq_lo: int, seq_hi: int, rows: int,
                    applied: list[tuple[str, int]], summaries: list[dict[str, Any]]) -> None:
        """Record a new part, the messages it holds and the updated summaries, in one transaction."""
        with self._tx():
            self.db.execute("INSERT INTO parts VALUES (?,?,?,?,?,?)", (project, run_id, file, seq_lo, seq_hi, rows))
            self.db.executemany("INSERT OR IGNORE INTO applied VALUES (?,?)", applied)
            for s in summaries:
                self._merge_summary(project, run_id, s)

    def replace_parts(self, project: str, run_id: str, old: list[str], new: tuple[str, int, int, int]) -> None:
        """Swap compacted parts for the merged one, atomically."""
        with self._tx():
            self.db.executemany("DELETE FROM parts WHERE project=? AND run_id=? AND file=?",
                                [(project, run_id, f) for f in old])
            self.db.execute("INSERT INTO parts VALUES (?,?,?,?,?,?)", (project, run_id, *new))

    def parts(self, project: str, run_id: str) -> list[str]:
        rows = self.db.execute("SELECT file FROM parts WHERE project=? AND run_id=? ORDER BY seq_lo",
                               (project, run_id)).fetchall()
        return [r[0] for r in rows]

    def all_parts(self) -> set[tuple[str, str, str]]:
        return {tuple(r) for r in self.db.execute("SELECT project, run_id, file FROM parts")}  # type: ignore[misc]

    def summaries(self, project: str, run_id: str) -> list[dict[str, Any]]:
        rows = self.db.execute("SELECT key, count, min, max, last, last_step, last_time FROM summaries "
                               "WHERE project=? AND run_id=? ORDER BY key", (project, run_id)).fetchall()
        return [{"key": k, "count": c, "min": _back(lo), "max": _back(hi), "last": _back(last), "last_step": step,
                 "last_time": at} for k, c, lo, hi, last, step, at in rows]

    def runs_summaries(self, project: str, run_ids: list[str]) -> dict[str, list[dict[str, Any]]]:
        """:meth:`summaries` of many runs in one query: ``{run_id: [...]}`` (runs without metrics left out)."""
        out: dict[str, list[dict[str, Any]]] = {}
        for start in range(0, len(run_ids), 500):  # well under SQLite's bound-parameter limit
            chunk = run_ids[start:start + 500]
            rows = self.db.execute(
                "SELECT run_id, key, count, min, max, last, last_step, last_time FROM summaries WHERE project=? "
                "AND run_id IN "
                f"({','.join('?' * len(chunk))}) ORDER BY run_id, key", (project, *chunk)).fetchall()
            for run_id, k, c, lo, hi, last, step, at in rows:
                out.setdefault(run_id, []).append({"key": k, "count": c, "min": _back(lo), "max": _back(hi),
                                                   "last": _back(last), "last_step": step, "last_time": at})
        return out

    def key_summaries(self, project: str, key: str, limit: int, after: str = "") -> list[dict[str, Any]]:
        """One key's summary for every run of a project that logged it, by run id (paged)."""
        rows = self.db.execute("SELECT run_id, count, min, max, last, last_step, last_time FROM summaries "
                               "WHERE project=? AND key=? AND run_id > ? ORDER BY run_id LIMIT ?",
                               (project, key, after, limit)).fetchall()
        return [{"run_id": r, "count": c, "min": _back(lo), "max": _back(hi), "last": _back(last), "last_step": step,
                 "last_time": at} for r, c, lo, hi, last, step, at in rows]

    def unannounced(self, limit: int) -> list[tuple[str, dict[str, Any]]]:
        """Up to ``limit`` summaries changed since they were last announced, as ``(project, row)``
        by project, run and key; NaN and infinities as floats (the announcer words them for JSON)."""
        rows = self.db.execute("SELECT project, run_id, key, count, min, max, last, last_step, last_time FROM summaries "
                               "WHERE announced = 0 ORDER BY project, run_id, key LIMIT ?", (limit,)).fetchall()
        return [(project, {"run_id": r, "key": k, "count": c, "min": _back(lo), "max": _back(hi), "last": _back(last),
                           "last_step": step, "last_time": at})
                for project, r, k, c, lo, hi, last, step, at in rows]

    def mark_announced(self, project: str, rows: list[dict[str, Any]]) -> int:
        """Flag these summaries as announced, unless a later write changed them meanwhile (their
        count grew: that value is still to announce). Returns how many were flagged."""
        # Without a disk sync (WAL, synchronous=NORMAL for this commit): a flag lost to a power cut
        # only announces the same absolute values again, which readers ignore.
        self.db.execute("PRAGMA synchronous=NORMAL")
        try:
            with self._tx():
                flagged = 0
                for row in rows:
                    flagged += self.db.execute(
                        "UPDATE summaries SET announced = 1 WHERE project=? AND run_id=? AND key=? AND count=?",
                        (project, row["run_id"], row["key"], row["count"])).rowcount
        finally:
            self.db.execute("PRAGMA synchronous=FULL")
        return flagged

    def _merge_summary(self, project: str, run_id: str, s: dict[str, Any]) -> None:
        row = self.db.execute("SELECT count, min, max, last, last_step, last_seq, last_time FROM summaries "
                              "WHERE project=? AND run_id=? AND key=?", (project, run_id, s["key"])).fetchone()
        count, lo, hi, last, last_step, last_seq = s["count"], s["min"], s["max"], s["last"], s["last_step"], s["last_seq"]
        last_time = s.get("last_time")
        if row is not None:
            count += row[0]
            old_lo, old_hi = _back(row[1]), _back(row[2])
            lo = _minmax(min, lo, old_lo)
            hi = _minmax(max, hi, old_hi)
            if (row[4], row[5]) > (last_step, last_seq):  # the later step wins; ties go to the later batch
                last, last_step, last_seq, last_time = _back(row[3]), row[4], row[5], row[6]
        self.db.execute("INSERT OR REPLACE INTO summaries(project, run_id, key, count, min, max, last, last_step, "
                        "last_seq, last_time) VALUES (?,?,?,?,?,?,?,?,?,?)",
                        (project, run_id, s["key"], count, _num(lo), _num(hi), _num(last), last_step, last_seq,
                         last_time))

    def _tx(self) -> _Transaction:
        return _Transaction(self.db)


def _minmax(pick: Any, a: float | None, b: float | None) -> float | None:
    """min/max that skip None and NaN (a summary's min of all-NaN values is None)."""
    values = [v for v in (a, b) if v is not None and not math.isnan(v)]
    return pick(values) if values else None


class _Transaction:
    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def __enter__(self) -> None:
        self.db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: type[BaseException] | None, *_: object) -> None:
        self.db.execute("COMMIT" if exc_type is None else "ROLLBACK")
