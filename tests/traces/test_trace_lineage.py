"""Traces in the lineage graph (the projection on its own, a real DuckDB file): a trace recorded
inside a run (MLflow's ``mlflow.sourceRun``) and one linked to the run later are both downstream
of the run; a trace of no run adds no edge."""

from __future__ import annotations

from pathlib import Path

from cairn.kernel.envelope import Event
from cairn.services.lineage.projection import projection
from cairn.services.lineage.queries import LineageQueries
from cairn.services.lineage.store import LineageStore


def test_traces_recorded_in_or_linked_to_a_run_are_downstream_of_it(tmp_path: Path) -> None:
    made = [
        ("run.created", "run", "r1", {"experiment_id": "e", "name": "agent-eval", "params": {}, "tags": {},
                                      "description": "", "status": "running"}),
        ("trace.recorded", "trace", "tr-a", {"trace_id": "tr-a", "experiment_id": "e",
                                             "metadata": {"mlflow.sourceRun": "r1"}, "tags": {"mlflow.traceName": "plan"}}),
        ("trace.recorded", "trace", "tr-b", {"trace_id": "tr-b", "experiment_id": "e"}),
        ("trace.recorded", "trace", "tr-c", {"trace_id": "tr-c", "experiment_id": "e"}),
        ("trace.linked", "trace", "tr-b", {"trace_id": "tr-b", "run_ids": ["r1"]}),
        ("trace.recorded", "trace", "tr-d", {"trace_id": "tr-d", "experiment_id": "e",
                                             "metadata": {"mlflow.modelId": "m-" + "a" * 32}}),
    ]
    events = [Event(t, "p", a, i, d, sequence=n + 1, time=f"2026-01-01T00:00:0{n}.000000Z")
              for n, (t, a, i, d) in enumerate(made)]
    store = LineageStore(tmp_path / "l.duckdb")
    store.apply(events, projection())
    q = LineageQueries(store)
    run = q.resolve("run:r1", "p", None)[0]
    down = {i["ref"] for i in q.walk(run, "downstream", depth=None, projects=None, as_of=None)}
    assert down == {"trace:tr-a", "trace:tr-b"}
    edges = set(store.query("SELECT src, type, dst FROM lineage_edges"))
    assert ("run:p/r1", "produced", "trace:p/tr-a") in edges and not any("tr-c" in e[2] for e in edges)
    # a trace of a logged model (MLflow's mlflow.modelId) is downstream of the model
    model = q.resolve("logged_model:m-" + "a" * 32, "p", None)[0]
    assert {i["ref"] for i in q.walk(model, "downstream", depth=None, projects=None, as_of=None)} == {"trace:tr-d"}
