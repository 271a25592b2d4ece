"""Traces in the lineage graph: a trace recorded inside a run (MLflow's ``mlflow.sourceRun``
metadata) or linked to runs later (``trace.linked``) is a ``trace`` node that the run produced; a
trace of a logged model (MLflow's ``mlflow.modelId`` metadata: the model the traced call ran) is
one that the model produced."""

from __future__ import annotations

from cairn.kernel.envelope import Event
from cairn.services.lineage.domain import PRODUCED, GraphChanges, NodeSpec, logged_model, maps, run


def trace(project: str, trace_id: str, title: str | None = None) -> NodeSpec:
    return NodeSpec(f"trace:{project}/{trace_id}", "trace", project, trace_id, title=title)


def _produced(g: GraphChanges, e: Event, run_id: str) -> None:
    g.edge(g.node(run(e.project, run_id), e), g.node(trace(e.project, e.aggregate_id, _title(e)), e), PRODUCED, e)


def _title(e: Event) -> str | None:
    return (e.data.get("tags") or {}).get("mlflow.traceName")


@maps("trace.recorded")
def _recorded(g: GraphChanges, e: Event) -> None:
    metadata = e.data.get("metadata") or {}
    if metadata.get("mlflow.sourceRun"):
        _produced(g, e, metadata["mlflow.sourceRun"])
    if metadata.get("mlflow.modelId"):
        g.edge(g.node(logged_model(e.project, str(metadata["mlflow.modelId"])), e),
               g.node(trace(e.project, e.aggregate_id, _title(e)), e), PRODUCED, e)


@maps("trace.linked")
def _linked(g: GraphChanges, e: Event) -> None:
    for run_id in e.data["run_ids"]:
        _produced(g, e, run_id)
