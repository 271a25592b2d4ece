"""Monitor read model: events -> SQLite. Rule and alert events fold into their snapshots (which
commands decide from) and into the rule and alert tables the API lists; an alert that fired a
rollback adds an owed row to ``alert_actions``, which ``alert.action_taken`` settles; profiles and
references into their tables."""

from __future__ import annotations

import json
import sqlite3

from cairn.kernel.envelope import Event
from cairn.kernel.store import EventHandlers, SnapshotProjection
from cairn.services.monitor.domain import EVOLVERS, end_ms, owes_action

HANDLERS = EventHandlers()
handles = HANDLERS.handles

# the monitor's own aggregates; then the deployments' and the registry's (which version a deployment
# runs, the run it came from, the datasets that run used: the default reference's lookup)
AGGREGATES = ("alert_rule", "alert", "monitor", "profile", "deployment", "model", "dataset_use")


def projection() -> SnapshotProjection:
    """A fresh entry point for one service instance (its batch cache is its own)."""
    return SnapshotProjection(EVOLVERS, HANDLERS)


@handles("alert_rule.created", "alert_rule.updated")
def _rule(conn: sqlite3.Connection, e: Event) -> None:
    rule = {k: v for k, v in e.data.items() if k != "deployment"}
    conn.execute("INSERT INTO rules(project, id, deployment, size, rule, created_seq) VALUES(?, ?, ?, ?, ?, ?) "
                 "ON CONFLICT(project, id) DO UPDATE SET size=excluded.size, rule=excluded.rule",
                 (e.project, e.aggregate_id, e.data["deployment"], e.data["window"], json.dumps(rule), e.sequence))


@handles("alert_rule.deleted")
def _rule_deleted(conn: sqlite3.Connection, e: Event) -> None:
    """The rule goes, and its open alert is closed with it (nothing is left to resolve it)."""
    conn.execute("DELETE FROM rules WHERE project=? AND id=?", (e.project, e.aggregate_id))
    conn.execute("UPDATE alerts SET state='closed', resolved_at=? WHERE project=? AND rule_id=? AND state='open'",
                 (e.time, e.project, e.aggregate_id))


@handles("alert.fired")
def _fired(conn: sqlite3.Connection, e: Event) -> None:
    conn.execute("INSERT OR REPLACE INTO alerts(project, rule_id, fired_seq, deployment, state, fired, fired_at) "
                 "VALUES(?, ?, ?, ?, 'open', ?, ?)",
                 (e.project, e.aggregate_id, e.sequence, e.data["deployment"], json.dumps(e.data), e.time))
    if owes_action(e.data["action"]):  # owed from here until alert.action_taken
        end = e.data["window"]["end"]
        conn.execute("INSERT OR IGNORE INTO alert_actions(project, rule_id, end_ms, window_end, fired_seq, deployment, "
                     "action) VALUES(?, ?, ?, ?, ?, ?, ?)", (e.project, e.aggregate_id, end_ms(end), end, e.sequence,
                                                             e.data["deployment"], json.dumps(e.data["action"])))


@handles("alert.action_taken")
def _action_taken(conn: sqlite3.Connection, e: Event) -> None:
    conn.execute("UPDATE alert_actions SET outcome=?, detail=?, taken_at=? WHERE project=? AND rule_id=? AND end_ms=?",
                 (e.data["outcome"], e.data["detail"], e.time, e.project, e.aggregate_id, end_ms(e.data["window_end"])))


@handles("alert.resolved")
def _resolved(conn: sqlite3.Connection, e: Event) -> None:
    conn.execute("UPDATE alerts SET state='resolved', resolved=?, resolved_at=? "
                 "WHERE project=? AND rule_id=? AND state='open'",
                 (json.dumps(e.data), e.time, e.project, e.aggregate_id))


@handles("profile.registered")
def _profile(conn: sqlite3.Connection, e: Event) -> None:
    conn.execute("INSERT OR IGNORE INTO profiles(project, digest, rows, columns, source, registered_at, seq) "
                 "VALUES(?, ?, ?, ?, ?, ?, ?)",
                 (e.project, e.data["digest"], e.data["rows"], e.data["columns"], json.dumps(e.data["source"]),
                  e.time, e.sequence))


@handles("monitor.reference_set")
def _reference(conn: sqlite3.Connection, e: Event) -> None:
    conn.execute("INSERT INTO references_set(project, deployment, profile) VALUES(?, ?, ?) "
                 "ON CONFLICT(project, deployment) DO UPDATE SET profile=excluded.profile",
                 (e.project, e.data["deployment"], e.data["profile"]))


@handles("deployment.created", "deployment.version_changed", "deployment.deleted")
def _deployment(conn: sqlite3.Connection, e: Event) -> None:
    if e.type == "deployment.created":
        conn.execute("INSERT OR REPLACE INTO deployments(project, name, model_id, version, deleted) "
                     "VALUES(?, ?, ?, ?, 0)", (e.project, e.aggregate_id, e.data["model_id"], e.data["version"]))
    elif e.type == "deployment.version_changed":
        conn.execute("UPDATE deployments SET version=? WHERE project=? AND name=?",
                     (e.data["to"], e.project, e.aggregate_id))
    else:
        conn.execute("UPDATE deployments SET deleted=1 WHERE project=? AND name=?", (e.project, e.aggregate_id))


@handles("model_version.created")
def _version_created(conn: sqlite3.Connection, e: Event) -> None:
    conn.execute("INSERT OR REPLACE INTO model_versions(model_id, version, run_id) VALUES(?, ?, ?)",
                 (e.aggregate_id, e.data["version"], e.data["run_id"]))


@handles("run.dataset_used")
def _dataset_used(conn: sqlite3.Connection, e: Event) -> None:
    conn.execute("INSERT OR IGNORE INTO run_datasets(run_id, dataset, version) VALUES(?, ?, ?)",
                 (e.aggregate_id, e.data["dataset"], e.data["version"]))
