"""Registry HTTP API for MLflow 3's logged models (logged_models.py): create, read, params, tags,
status, metrics, delete and search. Routes are thin: the domain decides, the projection answers."""

from __future__ import annotations

import os
import time
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path
from pydantic import Field

from cairn.kernel.identity import ADMIN, EDITOR, VIEWER, requires
from cairn.kernel.ids import new_id
from cairn.kernel.service import ServiceRuntime
from cairn.services.registry import logged_models as domain
from cairn.services.registry.api import (
    MAX_ENTRIES,
    Ctx,
    Key,
    ParamMap,
    ProjectName,
    Runtime,
    Strict,
    TagMap,
    _store,
)
from cairn.services.registry.logged_model_search import (
    MAX_SCANNED,
    compile_filter,
    decode_offset,
    encode_offset,
    order_models,
    with_datasets,
)
from cairn.services.registry.logged_model_view import logged_model, logged_models

router = APIRouter()
ModelId = Annotated[str, Path(pattern=r"^m-[0-9a-f]{32}$", description="a logged model id, m-<32 hex>")]
Token = Annotated[str, Field(min_length=1, max_length=256, pattern=r"^[\x21-\x7e]+$")]


class LoggedModelCreate(Strict):
    experiment_id: str = Field(min_length=1, max_length=128)
    name: str | None = Field(default=None, max_length=256)
    model_type: str = Field(default="", max_length=256)
    source_run_id: Token | None = None
    params: ParamMap = Field(default_factory=dict)
    tags: TagMap = Field(default_factory=dict)


class LoggedModelParams(Strict):
    params: ParamMap


class LoggedModelTags(Strict):
    tags: TagMap


class LoggedModelFinalize(Strict):
    status: Literal["pending", "ready", "failed"]


class ModelMetric(Strict):
    key: Key
    value: float | str
    timestamp: int
    step: int = 0
    run_id: Token | None = None
    dataset_name: str | None = Field(default=None, max_length=500)
    dataset_digest: str | None = Field(default=None, max_length=500)


class LoggedModelMetrics(Strict):
    metrics: list[ModelMetric] = Field(max_length=MAX_ENTRIES)


class DatasetRef(Strict):
    dataset_name: str = Field(max_length=500)
    dataset_digest: str | None = Field(default=None, max_length=500)


class OrderBy(Strict):
    field_name: str = Field(max_length=300)
    ascending: bool = True
    dataset_name: str | None = Field(default=None, max_length=500)
    dataset_digest: str | None = Field(default=None, max_length=500)


class LoggedModelSearch(Strict):
    experiment_ids: list[str] = Field(min_length=1, max_length=100)
    filter: str | None = Field(default=None, max_length=4000)
    datasets: list[DatasetRef] | None = Field(default=None, max_length=100)
    order_by: list[OrderBy] | None = Field(default=None, max_length=10)
    page_size: int = Field(default=100, ge=1, le=1000)
    page_token: str | None = Field(default=None, max_length=1000)


def _read(rt: ServiceRuntime, project: str, model_id: str) -> dict[str, Any]:
    with _store(rt).snapshot() as conn:
        return logged_model(conn, project, model_id)


async def _model_cmd(rt: ServiceRuntime, ctx: Any, project: str, model_id: str, decide: Any) -> dict[str, Any]:
    _read(rt, project, model_id)  # 404 for a model of another project, or a deleted one
    await rt.commands.execute(ctx, project=project, aggregate="logged_model", aggregate_id=model_id, decide=decide)
    return _read(rt, project, model_id)


@router.post("/projects/{project}/logged-models", tags=["logged models"], **requires(EDITOR))
async def create_logged_model(project: ProjectName, body: LoggedModelCreate, rt: Runtime, ctx: Ctx) -> dict[str, Any]:
    """A logged model in an experiment; ``source_run_id`` is kept as given (MLflow checks no run)."""
    _store(rt).experiment(project, body.experiment_id)
    model_id = f"m-{new_id()}"
    name = body.name or f"model-{time.strftime('%Y%m%d')}-{os.urandom(3).hex()}"
    outcome = await rt.commands.execute(ctx, project=project, aggregate="logged_model", aggregate_id=model_id,
                                        decide=lambda s: domain.create_logged_model(
                                            s, model_id=model_id, experiment_id=body.experiment_id, name=name,
                                            model_type=body.model_type, source_run_id=body.source_run_id,
                                            params=body.params, tags=body.tags))
    return _read(rt, project, outcome.aggregate_id)  # a retried request answers with the first one's model


@router.get("/projects/{project}/logged-models/{model_id}", tags=["logged models"], **requires(VIEWER))
def get_logged_model(project: ProjectName, model_id: ModelId, rt: Runtime) -> dict[str, Any]:
    return _read(rt, project, model_id)


@router.post("/projects/{project}/logged-models/{model_id}/params", tags=["logged models"], **requires(EDITOR))
async def log_logged_model_params(project: ProjectName, model_id: ModelId, body: LoggedModelParams, rt: Runtime,
                                  ctx: Ctx) -> dict[str, Any]:
    return await _model_cmd(rt, ctx, project, model_id, lambda s: domain.log_logged_model_params(
        s, model_id=model_id, params=body.params))


@router.patch("/projects/{project}/logged-models/{model_id}/tags", tags=["logged models"], **requires(EDITOR))
async def set_logged_model_tags(project: ProjectName, model_id: ModelId, body: LoggedModelTags, rt: Runtime,
                                ctx: Ctx) -> dict[str, Any]:
    return await _model_cmd(rt, ctx, project, model_id, lambda s: domain.set_logged_model_tags(
        s, model_id=model_id, tags=body.tags))


@router.delete("/projects/{project}/logged-models/{model_id}/tags/{key}", tags=["logged models"],
               **requires(ADMIN))
async def delete_logged_model_tag(project: ProjectName, model_id: ModelId, key: str, rt: Runtime,
                                  ctx: Ctx) -> dict[str, Any]:
    return await _model_cmd(rt, ctx, project, model_id, lambda s: domain.delete_logged_model_tag(
        s, model_id=model_id, key=key))


@router.post("/projects/{project}/logged-models/{model_id}/finalize", tags=["logged models"], **requires(EDITOR))
async def finalize_logged_model(project: ProjectName, model_id: ModelId, body: LoggedModelFinalize, rt: Runtime,
                                ctx: Ctx) -> dict[str, Any]:
    return await _model_cmd(rt, ctx, project, model_id, lambda s: domain.finalize_logged_model(
        s, model_id=model_id, status=body.status))


@router.post("/projects/{project}/logged-models/{model_id}/metrics", tags=["logged models"], **requires(EDITOR))
async def log_logged_model_metrics(project: ProjectName, model_id: ModelId, body: LoggedModelMetrics, rt: Runtime,
                                   ctx: Ctx) -> dict[str, Any]:
    metrics = [m.model_dump() for m in body.metrics]
    return await _model_cmd(rt, ctx, project, model_id, lambda s: domain.log_logged_model_metrics(
        s, model_id=model_id, metrics=metrics))


@router.delete("/projects/{project}/logged-models/{model_id}", tags=["logged models"], **requires(ADMIN))
async def delete_logged_model(project: ProjectName, model_id: ModelId, rt: Runtime, ctx: Ctx) -> dict[str, Any]:
    _read(rt, project, model_id)
    await rt.commands.execute(ctx, project=project, aggregate="logged_model", aggregate_id=model_id,
                              decide=lambda s: domain.delete_logged_model(s, model_id=model_id))
    return {}


@router.post("/projects/{project}/logged-models/search", tags=["logged models"], **requires(VIEWER))
def search_logged_models(project: ProjectName, body: LoggedModelSearch, rt: Runtime) -> dict[str, Any]:
    """MLflow's filter syntax, datasets and order_by over the experiments' live logged models."""
    predicates = compile_filter(body.filter)
    offset = decode_offset(body.page_token)
    marks = ",".join("?" * len(body.experiment_ids))
    with _store(rt).snapshot() as conn:
        models = logged_models(conn, project, f"experiment_id IN ({marks})", tuple(body.experiment_ids))[:MAX_SCANNED]
    models = [m for m in models if all(p(m) for p in predicates)]
    models = with_datasets(models, [d.model_dump() for d in body.datasets or []])
    models = order_models(models, [o.model_dump() for o in body.order_by or []])
    page = models[offset:offset + body.page_size]
    out: dict[str, Any] = {"models": page}
    if offset + body.page_size < len(models):
        out["next_page_token"] = encode_offset(offset + body.page_size)
    return out
