"""Traces in the lineage graph: a trace recorded inside a run (MLflow's ``mlflow.sourceRun``
metadata) or linked to runs later (``trace.linked``) is a ``trace`` node that the run produced."""

from __future__ import annotations

from cairn.kernel.envelope import Event
from cairn.services.lineage.domain import PRODUCED, GraphChanges, NodeSpec, maps, run


def trace(project: str, trace_id: str, title: str | None = None) -> NodeSpec:
    return NodeSpec(f"trace:{project}/{trace_id}", "trace", project, trace_id, title=title)


def _produced(g: GraphChanges, e: Event, run_id: str) -> None:
    title = (e.data.get("tags") or {}).get("mlflow.traceName")
    g.edge(g.node(run(e.project, run_id), e), g.node(trace(e.project, e.aggregate_id, title), e), PRODUCED, e)


@maps("trace.recorded")
def _recorded(g: GraphChanges, e: Event) -> None:
    source_run = (e.data.get("metadata") or {}).get("mlflow.sourceRun")
    if source_run:
        _produced(g, e, source_run)


@maps("trace.linked")
def _linked(g: GraphChanges, e: Event) -> None:
    for run_id in e.data["run_ids"]:
        _produced(g, e, run_id)
