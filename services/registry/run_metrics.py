"""Runs' metric summaries in the registry's read model, projected from the metrics service's
``metric.summarized`` events, so that run search (``metrics.val_loss < 0.3``, ordering by a metric)
and the run diff read the registry alone, with no call to the metrics service at query time.

They lag the points by the metrics service's write interval plus one append and its projection.
An event carries absolute values as of one write; each row keeps the one with the larger count, so
an event applied twice, or an older one after a newer (a backfill after a live one), changes nothing.
"""

from __future__ import annotations

import math
import sqlite3
from typing import Any

from cairn.kernel.envelope import Event
from cairn.kernel.store import EventHandlers, SqliteStore

# ``last_num`` is ``last`` when it is a finite number, else NULL: what search compares and sorts
# (NaN and infinities match no comparison and sort last, as before). min/max/last keep NaN and
# the infinities as the strings the metrics API uses.
RUN_METRICS_SCHEMA = """
CREATE TABLE IF NOT EXISTS run_metrics (
    project TEXT NOT NULL, run_id TEXT NOT NULL, key TEXT NOT NULL, count INTEGER NOT NULL,
    min, max, last, last_step INTEGER NOT NULL, last_time REAL, last_num REAL,
    PRIMARY KEY (project, run_id, key));
CREATE INDEX IF NOT EXISTS run_metrics_by_key ON run_metrics(project, key, last_num);
"""

METRIC_HANDLERS = EventHandlers()


def _finite(value: Any) -> float | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


@METRIC_HANDLERS.handles("metric.summarized")
def _metric_summarized(conn: sqlite3.Connection, e: Event) -> None:
    conn.executemany(
        "INSERT INTO run_metrics(project, run_id, key, count, min, max, last, last_step, last_time, last_num) "
        "VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(project, run_id, key) DO UPDATE SET "
        "count=excluded.count, min=excluded.min, max=excluded.max, last=excluded.last, "
        "last_step=excluded.last_step, last_time=excluded.last_time, last_num=excluded.last_num "
        "WHERE excluded.count > run_metrics.count",
        [(e.project, s["run_id"], s["key"], s["count"], s["min"], s["max"], s["last"], s["last_step"],
          s["last_time"], _finite(s["last"])) for s in e.data["summaries"]])


def run_last_values(store: SqliteStore, project: str, run_id: str) -> dict[str, float | str | None]:
    """Every key's last value for one run; NaN and infinities as ``"NaN"``, ``"Infinity"``, ``"-Infinity"``."""
    rows = store.query("SELECT key, last FROM run_metrics WHERE project=? AND run_id=? ORDER BY key",
                       (project, run_id))
    return {row["key"]: row["last"] for row in rows}
