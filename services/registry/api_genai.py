"""Registry HTTP API for MLflow 3's GenAI records: evaluation datasets (eval_datasets.py) and
registered scorers (scorers.py). Routes are thin: the domain decides, the projection answers."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from pydantic import Field

from cairn.kernel.commands import Decision
from cairn.kernel.errors import InvalidInput
from cairn.kernel.identity import ADMIN, EDITOR, VIEWER, requires
from cairn.kernel.ids import new_id
from cairn.kernel.service import ServiceRuntime
from cairn.services.registry import eval_datasets, scorers
from cairn.services.registry.api import Ctx, ProjectName, Runtime, Strict, TagMap, _store
from cairn.services.registry.eval_dataset_view import eval_dataset, eval_dataset_records
from cairn.services.registry.eval_dataset_view import eval_datasets as list_datasets
from cairn.services.registry.logged_model_search import compile_filter, decode_offset, encode_offset

router = APIRouter()
DatasetId = Annotated[str, Path(pattern=r"^d-[0-9a-f]{32}$", description="an evaluation dataset id, d-<32 hex>")]
ExperimentId = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_-]+$")]
DATASET_ATTRIBUTES = {"name": "name", "dataset_id": "id", "created_time": "created_time",
                      "last_update_time": "last_update_time", "created_by": "created_by",
                      "last_updated_by": "last_updated_by"}


class DatasetCreate(Strict):
    name: str = Field(min_length=1, max_length=256)
    experiment_ids: list[ExperimentId] = Field(default_factory=list, max_length=100)
    tags: TagMap = Field(default_factory=dict)
    created_by: str | None = Field(default=None, max_length=256)


class DatasetTags(Strict):
    tags: TagMap


class DatasetRecords(Strict):
    records: list[Any] = Field(max_length=10_000)
    updated_by: str | None = Field(default=None, max_length=256)


class DatasetSearch(Strict):
    experiment_ids: list[ExperimentId] | None = Field(default=None, max_length=100)
    filter: str | None = Field(default=None, max_length=4000)
    order_by: list[str] | None = Field(default=None, max_length=10)
    page_size: int = Field(default=1000, ge=1, le=1000)
    page_token: str | None = Field(default=None, max_length=1000)


class ScorerRegister(Strict):
    experiment_id: ExperimentId
    name: str = Field(min_length=1, max_length=256)
    serialized_scorer: str


def _dataset(rt: ServiceRuntime, project: str, dataset_id: str) -> dict[str, Any]:
    with _store(rt).snapshot() as conn:
        return eval_dataset(conn, project, dataset_id)


async def _dataset_cmd(rt: ServiceRuntime, ctx: Any, project: str, dataset_id: str, decide: Any) -> None:
    _dataset(rt, project, dataset_id)  # 404 for another project's dataset or a deleted one
    await rt.commands.execute(ctx, project=project, aggregate="eval_dataset", aggregate_id=dataset_id, decide=decide)


@router.post("/projects/{project}/eval-datasets", tags=["evaluation datasets"], **requires(EDITOR))
async def create_dataset(project: ProjectName, body: DatasetCreate, rt: Runtime, ctx: Ctx) -> dict[str, Any]:
    for experiment_id in body.experiment_ids:
        _store(rt).experiment(project, experiment_id)
    dataset_id = f"d-{new_id()}"
    outcome = await rt.commands.execute(ctx, project=project, aggregate="eval_dataset", aggregate_id=dataset_id,
                                        decide=lambda s: eval_datasets.create_eval_dataset(
                                            s, dataset_id=dataset_id, name=body.name, experiment_ids=body.experiment_ids,
                                            tags=body.tags, created_by=body.created_by))
    return _dataset(rt, project, outcome.aggregate_id)


@router.get("/projects/{project}/eval-datasets/{dataset_id}", tags=["evaluation datasets"], **requires(VIEWER))
def get_dataset(project: ProjectName, dataset_id: DatasetId, rt: Runtime) -> dict[str, Any]:
    return _dataset(rt, project, dataset_id)


@router.patch("/projects/{project}/eval-datasets/{dataset_id}/tags", tags=["evaluation datasets"], **requires(EDITOR))
async def set_dataset_tags(project: ProjectName, dataset_id: DatasetId, body: DatasetTags, rt: Runtime,
                           ctx: Ctx) -> dict[str, Any]:
    await _dataset_cmd(rt, ctx, project, dataset_id, lambda s: eval_datasets.set_eval_dataset_tags(
        s, dataset_id=dataset_id, tags=body.tags))
    return _dataset(rt, project, dataset_id)


@router.delete("/projects/{project}/eval-datasets/{dataset_id}/tags/{key}", tags=["evaluation datasets"],
               **requires(ADMIN))
async def delete_dataset_tag(project: ProjectName, dataset_id: DatasetId, key: str, rt: Runtime,
                             ctx: Ctx) -> dict[str, Any]:
    await _dataset_cmd(rt, ctx, project, dataset_id, lambda s: eval_datasets.delete_eval_dataset_tag(
        s, dataset_id=dataset_id, key=key))
    return _dataset(rt, project, dataset_id)


@router.delete("/projects/{project}/eval-datasets/{dataset_id}", tags=["evaluation datasets"], **requires(ADMIN))
async def delete_dataset(project: ProjectName, dataset_id: DatasetId, rt: Runtime, ctx: Ctx) -> dict[str, Any]:
    await _dataset_cmd(rt, ctx, project, dataset_id, lambda s: eval_datasets.delete_eval_dataset(
        s, dataset_id=dataset_id))
    return {}


@router.post("/projects/{project}/eval-datasets/{dataset_id}/records", tags=["evaluation datasets"],
             **requires(EDITOR))
async def upsert_records(project: ProjectName, dataset_id: DatasetId, body: DatasetRecords, rt: Runtime,
                         ctx: Ctx) -> dict[str, Any]:
    """Insert records with new inputs, update those whose inputs match; answers the counts."""
    decided: dict[str, Decision] = {}

    def decide(state: dict[str, Any] | None) -> Decision:
        decided["last"] = eval_datasets.upsert_records(state, dataset_id=dataset_id, records=body.records,
                                                       updated_by=body.updated_by)
        return decided["last"]

    await _dataset_cmd(rt, ctx, project, dataset_id, decide)
    last = decided.get("last")
    rows: list[dict[str, Any]] = last[1]["records"] if last else []
    updated = sum(1 for r in rows if r["update"])
    return {"inserted_count": len(rows) - updated, "updated_count": updated}


@router.get("/projects/{project}/eval-datasets/{dataset_id}/records", tags=["evaluation datasets"],
            **requires(VIEWER))
def list_records(project: ProjectName, dataset_id: DatasetId, rt: Runtime,
                 page_size: Annotated[int, Query(ge=1, le=1000)] = 1000,
                 page_token: Annotated[str | None, Query(max_length=1000)] = None) -> dict[str, Any]:
    offset = decode_offset(page_token)
    with _store(rt).snapshot() as conn:
        eval_dataset(conn, project, dataset_id)
        records = eval_dataset_records(conn, dataset_id, offset, page_size + 1)
    out: dict[str, Any] = {"records": records[:page_size]}
    if len(records) > page_size:
        out["next_page_token"] = encode_offset(offset + page_size)
    return out


def _field(column: str) -> Callable[[dict[str, Any]], Any]:
    return lambda dataset: dataset[column]


def _order(datasets: list[dict[str, Any]], order_by: list[str]) -> list[dict[str, Any]]:
    out = sorted(datasets, key=lambda d: d["created_seq"], reverse=True)  # newest first, as MLflow
    for clause in reversed(order_by):
        field, _, direction = clause.strip().partition(" ")
        column = DATASET_ATTRIBUTES.get(field.lower())
        if column is None or direction.strip().upper() not in ("", "ASC", "DESC"):
            raise InvalidInput(f"cannot order datasets by {clause!r}: use <field> [ASC|DESC] with a "
                               f"field of {', '.join(sorted(DATASET_ATTRIBUTES))}")
        out.sort(key=_field(column), reverse=direction.strip().upper() == "DESC")
    return out


@router.post("/projects/{project}/eval-datasets/search", tags=["evaluation datasets"], **requires(VIEWER))
def search_datasets(project: ProjectName, body: DatasetSearch, rt: Runtime) -> dict[str, Any]:
    predicates = compile_filter(body.filter, DATASET_ATTRIBUTES)
    offset = decode_offset(body.page_token)
    with _store(rt).snapshot() as conn:
        found = list_datasets(conn, project)
    if body.experiment_ids:
        wanted = set(body.experiment_ids)
        found = [d for d in found if wanted & set(d["experiment_ids"])]
    found = _order([d for d in found if all(p(d) for p in predicates)], body.order_by or [])
    out: dict[str, Any] = {"datasets": found[offset:offset + body.page_size]}
    if offset + body.page_size < len(found):
        out["next_page_token"] = encode_offset(offset + body.page_size)
    return out


@router.post("/projects/{project}/scorers", tags=["scorers"], **requires(EDITOR))
async def register_scorer(project: ProjectName, body: ScorerRegister, rt: Runtime, ctx: Ctx) -> dict[str, Any]:
    """A new version of the experiment's scorer of this name (version 1 for a new name)."""
    _store(rt).experiment(project, body.experiment_id)
    sid = scorers.scorer_id(body.experiment_id, body.name)
    await rt.commands.execute(ctx, project=project, aggregate="scorer", aggregate_id=sid,
                              decide=lambda s: scorers.register_scorer(
                                  s, experiment_id=body.experiment_id, name=body.name,
                                  serialized_scorer=body.serialized_scorer))
    with _store(rt).snapshot() as conn:
        return scorers.scorer_versions(conn, project, body.experiment_id, body.name)[-1]


@router.get("/projects/{project}/scorers", tags=["scorers"], **requires(VIEWER))
def list_scorers(project: ProjectName, rt: Runtime, experiment_id: Annotated[str, Query(max_length=128)],
                 name: Annotated[str | None, Query(max_length=256)] = None,
                 latest_only: bool = False) -> dict[str, Any]:
    """The experiment's scorer versions (of one name if given; the latest of each with latest_only)."""
    _store(rt).experiment(project, experiment_id)
    with _store(rt).snapshot() as conn:
        return {"scorers": scorers.scorer_versions(conn, project, experiment_id, name, latest_only)}


@router.delete("/projects/{project}/scorers", tags=["scorers"], **requires(ADMIN))
async def delete_scorer(project: ProjectName, rt: Runtime, ctx: Ctx, experiment_id: Annotated[str, Query(max_length=128)],
                        name: Annotated[str, Query(min_length=1, max_length=256)],
                        version: Annotated[int | None, Query(ge=1)] = None) -> dict[str, Any]:
    """One version of a scorer, or every version when none is given."""
    _store(rt).experiment(project, experiment_id)
    await rt.commands.execute(ctx, project=project, aggregate="scorer", aggregate_id=scorers.scorer_id(experiment_id, name),
                              decide=lambda s: scorers.delete_scorer(s, name=name, version=version))
    return {}

