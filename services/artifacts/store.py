"""Artifact-store read model: SQLite schema and the queries the API serves."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from cairn.kernel.errors import NotFound
from cairn.services.artifacts.media_store import MEDIA_SCHEMA, MediaQueries

SCHEMA = """
CREATE TABLE IF NOT EXISTS dataset_versions (
    project TEXT NOT NULL, name TEXT NOT NULL, version INTEGER NOT NULL,
    manifest_digest TEXT NOT NULL, files INTEGER NOT NULL, total_size INTEGER NOT NULL,
    description TEXT NOT NULL, created_at TEXT NOT NULL, created_by TEXT NOT NULL,
    seq INTEGER NOT NULL, PRIMARY KEY (project, name, version));
CREATE TABLE IF NOT EXISTS run_artifacts (
    project TEXT NOT NULL, run_id TEXT NOT NULL, name TEXT NOT NULL, digest TEXT NOT NULL,
    kind TEXT NOT NULL, size INTEGER NOT NULL, files INTEGER NOT NULL, created_at TEXT NOT NULL,
    created_by TEXT NOT NULL, seq INTEGER NOT NULL, PRIMARY KEY (project, run_id, name));
CREATE TABLE IF NOT EXISTS dataset_uses (
    project TEXT NOT NULL, run_id TEXT NOT NULL, dataset TEXT NOT NULL, version INTEGER NOT NULL,
    manifest_digest TEXT NOT NULL, created_at TEXT NOT NULL, seq INTEGER NOT NULL,
    PRIMARY KEY (project, run_id, dataset, version));
-- Every blob digest some event points at (GC roots); a manifest's files are expanded at GC time.
-- may_be_manifest: 0 when the event says it is a plain file, so GC need not open it.
CREATE TABLE IF NOT EXISTS blob_refs (
    digest TEXT NOT NULL, source TEXT NOT NULL, may_be_manifest INTEGER NOT NULL,
    project TEXT NOT NULL, PRIMARY KEY (digest, source));
CREATE INDEX IF NOT EXISTS blob_refs_by_project ON blob_refs(project, may_be_manifest);
-- Which projects proved they hold a blob's content (blob.possessed; a dataset version's manifest,
-- sent whole with it): what blob reads are checked against. Naming a digest adds nothing here.
CREATE TABLE IF NOT EXISTS blob_possessions (
    project TEXT NOT NULL, digest TEXT NOT NULL, seq INTEGER NOT NULL,
    PRIMARY KEY (project, digest)) WITHOUT ROWID;
"""


def _row(row: sqlite3.Row | None) -> dict[str, Any]:
    assert row is not None
    return dict(row)


class ArtifactsStore(MediaQueries):
    """The artifact store's read model (a run's media index: media_store.py)."""

    def __init__(self, path: str | Path) -> None:
        super().__init__(path, SCHEMA + MEDIA_SCHEMA)

    def datasets(self, project: str) -> list[dict[str, Any]]:
        rows = self.query(
            "SELECT name, MAX(version) AS latest_version, MIN(created_at) AS created_at, "
            "MAX(created_at) AS updated_at FROM dataset_versions WHERE project=? GROUP BY name "
            "ORDER BY name", (project,))
        return [dict(r) for r in rows]

    def dataset_versions(self, project: str, name: str) -> list[dict[str, Any]]:
        rows = self.query("SELECT * FROM dataset_versions WHERE project=? AND name=? ORDER BY version",
                          (project, name))
        if not rows:
            raise NotFound(f"dataset {name!r} does not exist in project {project!r}")
        return [dict(r) for r in rows]

    def dataset_version(self, project: str, name: str, version: int | None) -> dict[str, Any]:
        versions = self.dataset_versions(project, name)
        if version is None:
            return versions[-1]
        for item in versions:
            if item["version"] == version:
                return item
        raise NotFound(f"dataset {name!r} has no version {version}; latest is {versions[-1]['version']}")

    def run_artifacts(self, project: str, run_id: str) -> list[dict[str, Any]]:
        return [dict(r) for r in self.query(
            "SELECT * FROM run_artifacts WHERE project=? AND run_id=? ORDER BY name", (project, run_id))]

    def run_artifact(self, project: str, run_id: str, name: str) -> dict[str, Any]:
        row = self.query_one("SELECT * FROM run_artifacts WHERE project=? AND run_id=? AND name=?",
                             (project, run_id, name))
        if row is None:
            raise NotFound(f"run {run_id!r} has no artifact named {name!r}")
        return _row(row)

    def dataset_uses(self, project: str, run_id: str) -> list[dict[str, Any]]:
        return [dict(r) for r in self.query(
            "SELECT dataset, version, manifest_digest, created_at FROM dataset_uses "
            "WHERE project=? AND run_id=? ORDER BY seq", (project, run_id))]

    def referenced_digests(self) -> tuple[set[str], set[str]]:
        """(every referenced digest, those that may be manifests)."""
        rows = self.query("SELECT digest, MAX(may_be_manifest) AS m FROM blob_refs GROUP BY digest")
        return {r["digest"] for r in rows}, {r["digest"] for r in rows if r["m"]}

    def possessed_by_any(self, digest: str, projects: list[str]) -> bool:
        """Whether one of ``projects`` proved it holds ``digest``."""
        if not projects:
            return False
        marks = ", ".join("?" for _ in projects)
        return self.query_one(f"SELECT 1 FROM blob_possessions WHERE project IN ({marks}) AND digest=? LIMIT 1",
                              (*projects, digest)) is not None

    def possessed_of(self, project: str, digests: list[str]) -> set[str]:
        """The ones of ``digests`` that ``project`` proved it holds."""
        out: set[str] = set()
        for start in range(0, len(digests), 500):
            part = digests[start:start + 500]
            marks = ", ".join("?" for _ in part)
            out.update(r["digest"] for r in self.query(
                f"SELECT digest FROM blob_possessions WHERE project=? AND digest IN ({marks})", (project, *part)))
        return out

    def version_by_seq(self, seq: int) -> dict[str, Any]:
        return _row(self.query_one("SELECT * FROM dataset_versions WHERE seq=?", (seq,)))
