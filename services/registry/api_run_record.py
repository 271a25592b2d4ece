"""Registry HTTP API for reproducibility: a run's environment record and the diff of two runs."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from cairn.kernel.errors import NotFound
from cairn.kernel.identity import EDITOR, SIGNED_IN, VIEWER, caller_of, requires
from cairn.sdk.run_diff import diff_runs
from cairn.services.registry import run_record
from cairn.services.registry.api import Ctx, ProjectName, Runtime, _run_cmd, _store
from cairn.services.registry.run_metrics import run_last_values
from cairn.services.registry.run_record_body import RunRecordPut
from cairn.services.registry.run_record_view import project_of_run, run_datasets
from cairn.services.registry.run_record_view import run_record as read_record

router = APIRouter()
RunRef = Annotated[str, Query(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_-]+$")]


@router.put("/projects/{project}/runs/{run_id}/environment", tags=["runs"], **requires(EDITOR))
@router.post("/projects/{project}/runs/{run_id}/environment", tags=["runs"], **requires(EDITOR))
async def record_environment(project: ProjectName, run_id: str, body: RunRecordPut, rt: Runtime,
                             ctx: Ctx) -> dict[str, Any]:
    """Record a run's environment, code snapshot, command and seeds (each once; the same again is a
    no-op, a different one 409; seeds add key by key)."""
    code = body.code.event_data() if body.code is not None else None
    await _run_cmd(rt, ctx, project, run_id, lambda s: run_record.record_environment(
        s, run_id=run_id, environment=body.environment, code=code, command=body.command, seeds=body.seeds))
    return _record_or_404(rt, project, run_id)


def _record_or_404(rt: Any, project: str, run_id: str) -> dict[str, Any]:
    store = _store(rt)
    store.run(project, run_id)
    found = read_record(store, project, run_id)
    if found is None:
        raise NotFound(f"run {run_id!r} has no environment record (cairn.start_run records one unless "
                       "record_environment=False or CAIRN_RECORD_ENVIRONMENT=0)")
    found["datasets"] = run_datasets(store, project, run_id)
    return found


@router.get("/projects/{project}/runs/{run_id}/environment", tags=["runs"], **requires(VIEWER))
def get_environment(project: ProjectName, run_id: str, rt: Runtime) -> dict[str, Any]:
    """A run's reproducibility record plus the dataset versions it used."""
    return _record_or_404(rt, project, run_id)


@router.get("/runs/diff", tags=["runs"], **requires(SIGNED_IN))
async def diff(request: Request, rt: Runtime, a: RunRef, b: RunRef,
               tolerance: Annotated[float, Query(ge=0)] = 0.0, relative: bool = False,
               system_metrics: bool = False) -> dict[str, Any]:
    """What differs between runs ``a`` and ``b`` (possibly in different projects): params, code,
    environment (packages, hardware, drivers, env vars), datasets, final metrics (``system/*`` only
    with ``system_metrics=true``), seeds, command. ``tolerance`` is absolute, or relative to a's value."""
    store = _store(rt)
    visible = caller_of(request).projects
    bundles = []
    for run_id in (a, b):
        project = project_of_run(store, run_id, visible)
        metrics = run_last_values(store, project, run_id)  # projected from metric.summarized
        bundles.append({"run": store.run(project, run_id), "record": read_record(store, project, run_id),
                        "datasets": run_datasets(store, project, run_id), "metrics": metrics})
    return diff_runs(bundles[0], bundles[1], tolerance=tolerance, relative=relative,
                     system_metrics=system_metrics)
