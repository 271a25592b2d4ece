"""Model commands added for MLflow parity: removing tags, and versions whose files Cairn does not hold.

Pure like domain.py (state in, one event out). A version "without files" is what MLflow's registry
accepts and Cairn cannot make reproducible: a ``source`` that names no artifacts Cairn stores (MLflow's
own tests register ``runs:/run_id/model`` for runs that never existed). It is recorded with its
source and the reason, has no artifact digest, and serving or deploying it is refused; versions
with files keep every guarantee (``model_version.created`` is unchanged).
"""

from __future__ import annotations

from cairn.kernel.commands import Decision
from cairn.kernel.errors import InvalidInput
from cairn.kernel.ids import check_key, check_text
from cairn.services.registry.domain import State, _model, _version


def delete_model_tag(state: State, *, project: str, model_id: str, key: str) -> Decision:
    """Removing a tag the model does not have changes nothing (MLflow answers it the same way)."""
    model = _model(state, project, model_id)
    check_key(key, "key")
    if key not in model.get("tags", {}):
        return None
    return "model.tag_deleted", {"model_id": model_id, "key": key}


def delete_model_version_tag(state: State, *, model: str, version: int, key: str) -> Decision:
    """The version's tags are not in the aggregate's state, so removal is always recorded; the view
    deletes nothing when the tag is absent."""
    _version(state, model, version)
    check_key(key, "key")
    return "model_version.tag_deleted", {"version": version, "key": key}


def create_model_version_without_files(state: State, *, run_id: str, source: str, reason: str,
                                       description: str) -> Decision:
    if any(ord(c) < 32 and c not in "\t" for c in run_id) or len(run_id) > 128:
        raise InvalidInput("run_id must be at most 128 characters with no control characters",
                           details={"field": "run_id"})
    if not reason.strip():
        raise InvalidInput("reason must say why Cairn does not hold the version's files", details={"field": "reason"})
    version = (state or {}).get("latest_version", 0) + 1
    return "model_version.created_without_files", {
        "version": version, "run_id": run_id, "source": check_text(source, "source"),
        "reason": check_text(reason, "reason", 2000), "description": check_text(description, "description")}
