"""Artifact-store aggregates as pure functions: commands check state and return one event;
``evolve`` folds an event into state. No I/O here.

Aggregates (all owned by this service):
- dataset (id = dataset name): numbered versions, each a manifest digest;
- artifact_set (id = run id): a run's logged artifacts by name (immutable once logged);
- dataset_use (id = run id): the dataset versions a run declared as inputs;
- blob (id = digest): the project proved it holds the blob's content (docs/security.md, "Blobs and
  content addressing"); one event per project and blob, the first time.
"""

from __future__ import annotations

from typing import Any

from cairn.kernel.commands import Decision
from cairn.kernel.errors import Conflict, InvalidInput
from cairn.kernel.ids import ARTIFACT_NAME_RULE, artifact_name_problem
from cairn.services.artifacts.media_domain import evolve_media_set

State = dict[str, Any] | None

# Artifact names: any printable Unicode in '/'-separated segments (cairn.kernel.ids, where the
# rule and its reasons live; the gateway's MLflow layer applies the same one).
ARTIFACT_KINDS = ("file", "directory", "model")


def check_artifact_name(name: str) -> str:
    problem = artifact_name_problem(name)
    if problem is not None:
        raise InvalidInput(f"artifact name {name!r} is not valid ({problem}): use {ARTIFACT_NAME_RULE}",
                           details={"field": "name"})
    return name


# --- dataset ------------------------------------------------------------------------------------

def create_dataset_version(state: State, *, manifest_digest: str, files: int, total_size: int,
                           description: str) -> Decision:
    """A new version, unless the latest version already has this exact manifest (no-op)."""
    versions = state["versions"] if state else []
    if versions and versions[-1] == manifest_digest:
        return None
    return "dataset.version_created", {
        "version": len(versions) + 1, "manifest_digest": manifest_digest, "files": files,
        "total_size": total_size, "description": description,
    }


def evolve_dataset(state: State, event_type: str, data: dict[str, Any]) -> dict[str, Any]:
    current = state or {"versions": []}
    if event_type == "dataset.version_created":
        current = {"versions": [*current["versions"], data["manifest_digest"]]}
    return current


# --- artifact_set -------------------------------------------------------------------------------

def log_artifact(state: State, *, name: str, digest: str, kind: str, size: int, files: int) -> Decision:
    """Record an artifact under a name; the same name again with other bytes is a conflict."""
    check_artifact_name(name)
    if kind not in ARTIFACT_KINDS:
        raise InvalidInput(f"artifact kind {kind!r} is not one of {', '.join(ARTIFACT_KINDS)}",
                           details={"field": "kind"})
    logged = (state or {}).get("artifacts", {})
    if name in logged:
        if logged[name] == digest:
            return None
        raise Conflict(f"artifact {name!r} is already logged for this run with digest "
                       f"{logged[name]}; artifacts are immutable, log it under another name",
                       details={"name": name, "digest": logged[name]})
    return "run.artifact_logged", {"name": name, "digest": digest, "kind": kind, "size": size,
                                   "files": files}


def evolve_artifact_set(state: State, event_type: str, data: dict[str, Any]) -> dict[str, Any]:
    current = state or {"artifacts": {}}
    if event_type == "run.artifact_logged":
        current = {"artifacts": {**current["artifacts"], data["name"]: data["digest"]}}
    return current


# --- dataset_use --------------------------------------------------------------------------------

def use_dataset(state: State, *, dataset: str, version: int, manifest_digest: str) -> Decision:
    key = f"{dataset}@v{version}"
    if key in (state or {}).get("used", []):
        return None
    return "run.dataset_used", {"dataset": dataset, "version": version,
                                "manifest_digest": manifest_digest}


def evolve_dataset_use(state: State, event_type: str, data: dict[str, Any]) -> dict[str, Any]:
    current = state or {"used": []}
    if event_type == "run.dataset_used":
        current = {"used": [*current["used"], f"{data['dataset']}@v{data['version']}"]}
    return current


# --- blob (possession) --------------------------------------------------------------------------

POSSESSION_PROOFS = ("upload", "manifest")


def possess_blob(state: State, *, digest: str, size: int, proof: str) -> Decision:
    """Record that the project proved it holds ``digest`` (the caller checked the proof: hashed
    bytes, or a manifest of files the project holds); a no-op once recorded."""
    if proof not in POSSESSION_PROOFS:
        raise InvalidInput(f"possession proof {proof!r} is not one of {', '.join(POSSESSION_PROOFS)}",
                           details={"field": "proof"})
    if state is not None:
        return None
    return "blob.possessed", {"digest": digest, "size": size, "proof": proof}


POSSESSIONS_PER_EVENT = 1000  # blobs in one blobs.possessed (~90 KB of event)
POSSESSIONS, UPLOADS = "possessions", "uploads"  # a project's blobs.possessed: cairn.evt.<p>.possessions.uploads


def possess_blobs(held: set[str], blobs: dict[str, int]) -> Decision:
    """Record that the project proved, by uploading their bytes, that it holds ``blobs``
    (digest -> size, at most POSSESSIONS_PER_EVENT); ``held``: those it had proved already
    (the read model's view), which are left out. A no-op when none is left."""
    new = [{"digest": digest, "size": size} for digest, size in blobs.items() if digest not in held]
    if not new:
        return None
    return "blobs.possessed", {"blobs": new, "proof": "upload"}


def evolve_possessions(state: State, event_type: str, data: dict[str, Any]) -> dict[str, Any]:
    """A project's subject of possession records keeps no state: only its position matters
    (appends expect it), and the blobs themselves are in the read model."""
    return {}


def evolve_blob(state: State, event_type: str, data: dict[str, Any]) -> dict[str, Any]:
    if event_type == "blob.possessed":
        return {"size": data["size"]}
    return state or {}


# The event schemas this service owns (schemas/events/<type>.v1.json).
# run.artifact_logged v2 = v1 appended after checking that the project holds the blob.
EVENT_SCHEMAS = ("dataset.version_created.v1", "run.artifact_logged.v2", "run.dataset_used.v1",
                 "blob.possessed.v1", "blobs.possessed.v1")

EVOLVERS = {"dataset": evolve_dataset, "artifact_set": evolve_artifact_set,
            "dataset_use": evolve_dataset_use, "blob": evolve_blob,
            POSSESSIONS: evolve_possessions, "media_set": evolve_media_set}
