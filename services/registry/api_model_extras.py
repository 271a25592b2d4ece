"""Registry HTTP API added for MLflow parity: removing model and version tags, and registering a
version whose files Cairn does not hold (see model_commands.py for why and what it guarantees)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import Field

from cairn.kernel.identity import ADMIN, EDITOR, requires
from cairn.services.registry import model_commands
from cairn.services.registry.api import (
    Ctx,
    ProjectName,
    Runtime,
    Strict,
    _model_id,
    _run_command,
    _store,
)

router = APIRouter()


class VersionWithoutFiles(Strict):
    run_id: str = Field(default="", max_length=128, description="the run the source names, as given (may be empty)")
    source: str = Field(max_length=8000, description="where the files were said to be (kept as given)")
    reason: str = Field(min_length=1, max_length=2000, description="why Cairn does not hold the files")
    description: str = Field(default="", max_length=8000)


@router.delete("/projects/{project}/models/{model}/tags/{key}", tags=["models"], **requires(ADMIN))
async def delete_model_tag(project: ProjectName, model: str, key: str, rt: Runtime, ctx: Ctx) -> dict[str, Any]:
    """Remove a model tag (a tag the model lacks: nothing changes). Deletions need the admin role."""
    model_id = _model_id(rt, project, model)
    await _run_command(rt, ctx, project, "model", model_id, lambda s: model_commands.delete_model_tag(
        s, project=project, model_id=model_id, key=key))
    return _store(rt).model(project, model)


@router.delete("/projects/{project}/models/{model}/versions/{version}/tags/{key}", tags=["models"],
               **requires(ADMIN))
async def delete_model_version_tag(project: ProjectName, model: str, version: int, key: str, rt: Runtime,
                                   ctx: Ctx) -> dict[str, Any]:
    model_id = _model_id(rt, project, model)
    await _run_command(rt, ctx, project, "model", model_id, lambda s: model_commands.delete_model_version_tag(
        s, model=model, version=version, key=key))
    return _store(rt).model_version(project, model, version)


@router.post("/projects/{project}/models/{model}/versions/without-files", status_code=201, tags=["models"],
             **requires(EDITOR))
async def create_model_version_without_files(project: ProjectName, model: str, body: VersionWithoutFiles,
                                             rt: Runtime, ctx: Ctx) -> dict[str, Any]:
    """Register a version from a source whose files Cairn does not hold: recorded with the source and
    the reason, ``artifact_digest`` null, and refused by serving and deployments. Register from logged
    files (``POST .../versions`` with a digest) for a reproducible version."""
    model_id = _model_id(rt, project, model)
    outcome = await _run_command(rt, ctx, project, "model", model_id,
                                 lambda s: model_commands.create_model_version_without_files(
                                     s, run_id=body.run_id, source=body.source, reason=body.reason,
                                     description=body.description))
    store = _store(rt)
    version = store.created_by_event("model_versions", outcome.sequence)["version"]
    return store.model_version(project, model, version)
