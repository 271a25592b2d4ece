"""Monitor read model (SQLite): alert rules, the alerts they fired and the actions those owe (an
``alert_actions`` row without an outcome is owed), registered profiles and each deployment's
reference. Rules and alert state are also kept as aggregate snapshots (the kernel's
``aggregates`` table), which commands decide from."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from cairn.kernel.envelope import subject_for
from cairn.kernel.store import SqliteStore, load_state

SCHEMA = """
CREATE TABLE IF NOT EXISTS rules (
    project TEXT NOT NULL, id TEXT NOT NULL, deployment TEXT NOT NULL, size TEXT NOT NULL, rule TEXT NOT NULL,
    created_seq INTEGER NOT NULL, PRIMARY KEY (project, id));
CREATE INDEX IF NOT EXISTS rules_by_deployment ON rules(project, deployment, size);
CREATE TABLE IF NOT EXISTS alerts (
    project TEXT NOT NULL, rule_id TEXT NOT NULL, fired_seq INTEGER NOT NULL, deployment TEXT NOT NULL,
    state TEXT NOT NULL, fired TEXT NOT NULL, resolved TEXT, fired_at TEXT NOT NULL, resolved_at TEXT,
    PRIMARY KEY (project, fired_seq));
CREATE INDEX IF NOT EXISTS alerts_by_rule ON alerts(project, rule_id, state);
CREATE TABLE IF NOT EXISTS alert_actions (
    project TEXT NOT NULL, rule_id TEXT NOT NULL, end_ms INTEGER NOT NULL, window_end REAL NOT NULL,
    fired_seq INTEGER NOT NULL, deployment TEXT NOT NULL, action TEXT NOT NULL, outcome TEXT, detail TEXT,
    taken_at TEXT, PRIMARY KEY (project, rule_id, end_ms));
CREATE INDEX IF NOT EXISTS alert_actions_owed ON alert_actions(outcome, fired_seq);
CREATE TABLE IF NOT EXISTS profiles (
    project TEXT NOT NULL, digest TEXT NOT NULL, rows INTEGER NOT NULL, columns INTEGER NOT NULL,
    source TEXT NOT NULL, registered_at TEXT NOT NULL, seq INTEGER NOT NULL, PRIMARY KEY (project, digest));
CREATE TABLE IF NOT EXISTS deployments (
    project TEXT NOT NULL, name TEXT NOT NULL, model_id TEXT NOT NULL, version INTEGER NOT NULL,
    deleted INTEGER NOT NULL, PRIMARY KEY (project, name));
CREATE TABLE IF NOT EXISTS model_versions (
    model_id TEXT NOT NULL, version INTEGER NOT NULL, run_id TEXT NOT NULL, PRIMARY KEY (model_id, version));
CREATE TABLE IF NOT EXISTS run_datasets (
    run_id TEXT NOT NULL, dataset TEXT NOT NULL, version INTEGER NOT NULL, PRIMARY KEY (run_id, dataset, version));
CREATE TABLE IF NOT EXISTS references_set (
    project TEXT NOT NULL, deployment TEXT NOT NULL, profile TEXT NOT NULL, PRIMARY KEY (project, deployment));
"""


class MonitorStore(SqliteStore):
    def __init__(self, path: str | Path) -> None:
        super().__init__(path, SCHEMA)

    def rule_state(self, project: str, rule_id: str) -> tuple[int, dict[str, Any] | None]:
        return load_state(self.reader(), subject_for(project, "alert_rule", rule_id))

    def alert_state(self, project: str, rule_id: str) -> tuple[int, dict[str, Any] | None]:
        return load_state(self.reader(), subject_for(project, "alert", rule_id))

    def rules(self, project: str, deployment: str, size: str | None = None) -> list[dict[str, Any]]:
        """Live rules of a deployment (of one window size when given), oldest first, with their state."""
        sql = "SELECT id, rule FROM rules WHERE project=? AND deployment=?"
        params: list[Any] = [project, deployment]
        if size is not None:
            sql += " AND size=?"
            params.append(size)
        out = []
        for row in self.query(sql + " ORDER BY created_seq", params):
            _, alert = self.alert_state(project, row["id"])
            out.append({"id": row["id"], "deployment": deployment, **json.loads(row["rule"]),
                        "firing": bool(alert and alert["firing"]),
                        "last_fired_end": alert["last_fired_end"] if alert else None})
        return out

    def actions_owed(self, limit: int = 100) -> list[dict[str, Any]]:
        """Actions fired and not yet recorded as taken, oldest first (every project)."""
        rows = self.query("SELECT project, rule_id, window_end, deployment, action FROM alert_actions "
                          "WHERE outcome IS NULL ORDER BY fired_seq LIMIT ?", (limit,))
        return [{"project": r["project"], "rule_id": r["rule_id"], "window_end": r["window_end"],
                 "deployment": r["deployment"], "action": json.loads(r["action"])} for r in rows]

    def actions_owed_count(self) -> int:
        row = self.query_one("SELECT count(*) FROM alert_actions WHERE outcome IS NULL", ())
        return int(row[0]) if row else 0

    def alerts(self, project: str, *, open_only: bool, deployment: str | None, limit: int) -> list[dict[str, Any]]:
        sql = ("SELECT a.*, x.outcome AS action_outcome, x.detail AS action_detail, x.taken_at AS action_taken_at, "
               "x.end_ms AS action_end_ms "
               "FROM alerts a LEFT JOIN alert_actions x ON x.project=a.project AND x.fired_seq=a.fired_seq "
               "WHERE a.project=?")
        params: list[Any] = [project]
        if open_only:
            sql += " AND a.state='open'"
        if deployment is not None:
            sql += " AND a.deployment=?"
            params.append(deployment)
        rows = self.query(sql + " ORDER BY a.fired_seq DESC LIMIT ?", [*params, limit])
        return [alert_row(r) for r in rows]

    def profile(self, project: str, digest: str) -> dict[str, Any] | None:
        row = self.query_one("SELECT * FROM profiles WHERE project=? AND digest=?", (project, digest))
        return profile_row(row) if row else None

    def profiles(self, project: str, limit: int) -> list[dict[str, Any]]:
        rows = self.query("SELECT * FROM profiles WHERE project=? ORDER BY seq DESC LIMIT ?", (project, limit))
        return [profile_row(r) for r in rows]

    def deployment_exists(self, project: str, name: str) -> bool:
        row = self.query_one("SELECT deleted FROM deployments WHERE project=? AND name=?", (project, name))
        return row is not None and not row[0]

    def reference(self, project: str, deployment: str) -> dict[str, Any]:
        """The deployment's reference profile: the one set for it, else (``"default"``) the newest
        profile registered for a dataset version that the run of the deployed model version used."""
        row = self.query_one("SELECT profile FROM references_set WHERE project=? AND deployment=?",
                             (project, deployment))
        if row is not None:
            return {"profile": row[0], "chosen": "set"}
        row = self.query_one(
            "SELECT p.digest, p.source FROM deployments d JOIN model_versions m ON m.model_id=d.model_id AND "
            "m.version=d.version JOIN run_datasets r ON r.run_id=m.run_id JOIN profiles p ON p.project=d.project "
            "AND json_extract(p.source, '$.dataset')=r.dataset AND json_extract(p.source, '$.version')=r.version "
            "WHERE d.project=? AND d.name=? ORDER BY p.seq DESC LIMIT 1", (project, deployment))
        if row is not None:
            return {"profile": row[0], "chosen": "default", "source": json.loads(row[1])}
        return {"profile": None, "chosen": None}


def alert_row(row: Any) -> dict[str, Any]:
    fired = json.loads(row["fired"])
    return {"rule_id": row["rule_id"], "deployment": row["deployment"], "state": row["state"],
            "name": fired["name"], "metric": fired["metric"], "column": fired["column"],
            "value": fired["value"], "threshold": fired["threshold"], "comparison": fired["comparison"],
            "window": fired["window"], "history": fired["history"], "action": fired["action"],
            "fired_at": row["fired_at"], "fired_seq": row["fired_seq"], "resolved_at": row["resolved_at"],
            "resolved": json.loads(row["resolved"]) if row["resolved"] else None,
            "action_taken": action_taken(row)}


def action_taken(row: Any) -> dict[str, Any] | None:
    """What became of the alert's action: None (none the monitor carries out), ``owed`` (not yet
    carried out), or ``done`` / ``failed`` with the detail."""
    if row["action_end_ms"] is None:
        return None
    if row["action_outcome"] is None:
        return {"outcome": "owed"}
    return {"outcome": row["action_outcome"], "detail": row["action_detail"], "at": row["action_taken_at"]}


def profile_row(row: Any) -> dict[str, Any]:
    return {"digest": row["digest"], "rows": row["rows"], "columns": row["columns"],
            "source": json.loads(row["source"]), "registered_at": row["registered_at"]}
