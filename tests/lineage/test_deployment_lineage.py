"""Deployments in the lineage graph: ``model@version -> deployment`` while that version serves,
closed when it changes (so the graph as of an earlier time shows the version that served then)."""

from __future__ import annotations

from pathlib import Path

import pytest

from cairn.kernel.envelope import Event
from cairn.services.lineage.projection import projection
from cairn.services.lineage.queries import AsOf, LineageQueries
from cairn.services.lineage.store import LineageStore

ART = "a" * 64


def events() -> list[Event]:
    made = [
        ("run.created", "run", "r1", {"experiment_id": "e", "name": "train", "params": {}, "tags": {},
                                      "description": "", "status": "running"}),
        ("model.created", "model", "m1", {"model_id": "m1", "name": "fraud", "description": ""}),
        ("model_version.created", "model", "m1", {"version": 1, "run_id": "r1", "artifact_digest": ART,
                                                   "description": ""}),
        ("model_version.created", "model", "m1", {"version": 2, "run_id": "r1", "artifact_digest": ART,
                                                   "description": ""}),
        ("deployment.created", "deployment", "web", {
            "environment": "prod", "model": "fraud", "model_id": "m1", "follows": "production", "version": 1,
            "replicas": 2, "sample_rate": 0.0, "batching": None, "public": False}),
        ("deployment.version_changed", "deployment", "web", {"from": 1, "to": 2, "why": "alias_moved",
                                                             "model_id": "m1"}),
    ]
    return [Event(t, "p", agg, agg_id, data, sequence=i + 1, time=f"2026-01-01T00:00:{i:02d}.000000Z")
            for i, (t, agg, agg_id, data) in enumerate(made)]


@pytest.mark.parametrize("size", [1, 100])
def test_the_serving_version_is_upstream_of_the_deployment(tmp_path: Path, size: int) -> None:
    evs = events()
    store = LineageStore(tmp_path / "l.duckdb")
    handler = projection()
    for i in range(0, len(evs), size):
        store.apply(evs[i:i + size], handler)
    q = LineageQueries(store)
    nid, node = q.resolve("deployment:web", "p", None)
    assert node["kind"] == "deployment"
    walk = q.walk(nid, "upstream", depth=1, projects=None, as_of=None)
    assert {i["ref"] for i in walk} == {"model:fraud@v2"}
    assert {i["ref"] for i in q.walk(nid, "upstream", depth=1, projects=None, as_of=AsOf(seq=5))} == {"model:fraud@v1"}
    run = q.resolve("run:r1", "p", None)[0]
    assert "deployment:web" in {i["ref"] for i in q.walk(run, "downstream", depth=None, projects=None, as_of=None)}
