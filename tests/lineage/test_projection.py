"""The lineage projection on its own (a real DuckDB file, events made here): batches and replays
give the same database, an alias move closes the old edge, unknown event types are counted,
and the scheduler / environment events map to ran_in, part_of and ran_with edges."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from cairn.kernel.envelope import Event
from cairn.services.lineage.projection import projection
from cairn.services.lineage.queries import AsOf, LineageQueries
from cairn.services.lineage.store import LineageStore

D1, D2, ART = "1" * 64, "2" * 64, "a" * 64


def events() -> list[Event]:
    made = [
        ("dataset.version_created", "dataset", "reviews", {"version": 1, "manifest_digest": D1, "files": 1,
                                                           "total_size": 3, "description": ""}),
        ("run.created", "run", "r1", {"experiment_id": "e", "name": "train", "params": {}, "tags": {},
                                      "description": "", "status": "running"}),
        ("run.dataset_used", "run", "r1", {"dataset": "reviews", "version": 1, "manifest_digest": D1}),
        ("run.dataset_used", "run", "r1", {"dataset": "reviews", "version": 1, "manifest_digest": D1}),
        ("run.artifact_logged", "run", "r1", {"name": "model.bin", "digest": ART, "kind": "file", "size": 1,
                                              "files": 1}),
        ("run.environment_recorded", "run", "r1", {
            "code": {"commit": "c0ffee", "remote": "git@x:y.git", "archive_digest": "c" * 64, "dirty": False},
            "environment": {"python": {"version": "3.11.7"}, "packages": ["numpy==2.1.0"]},
            "seeds": {}, "command": ["python", "train.py"]}),
        ("job.submitted", "job", "j1", {"name": "nightly", "run_id": "r1", "sweep_id": "s1"}),
        ("metrics.logged", "metrics", "r1", {"points": 3}),
        ("project.created", "project", "p", {"name": "p"}),
        ("model.created", "project", "p", {"model_id": "m1", "name": "churn", "description": ""}),
        ("model_version.created", "model", "m1", {"version": 1, "run_id": "r1", "artifact_digest": ART,
                                                   "description": ""}),
        ("model_version.created", "model", "m1", {"version": 2, "run_id": "r1", "artifact_digest": ART,
                                                   "description": ""}),
        ("model_version.alias_set", "model", "m1", {"alias": "production", "version": 1, "previous_version": None}),
        ("model_version.alias_set", "model", "m1", {"alias": "production", "version": 2, "previous_version": 1}),
        ("model.updated", "project", "p", {"model_id": "m1", "name": "churn-v2"}),
        ("run.finished", "run", "r1", {"status": "finished", "message": ""}),
    ]
    return [Event(t, "p", agg, agg_id, data, sequence=i + 1, time=f"2026-01-01T00:00:{i:02d}.000000Z")
            for i, (t, agg, agg_id, data) in enumerate(made)]


def build(path: Path, batches: list[list[Event]]) -> LineageStore:
    store = LineageStore(path)
    handler = projection()
    for batch in batches:
        store.apply(batch, handler)
    return store


@pytest.mark.parametrize("size", [1, 3, 100])
def test_any_batching_gives_the_same_database(tmp_path: Path, size: int) -> None:
    whole = build(tmp_path / "whole.duckdb", [events()])
    evs = events()
    split = build(tmp_path / f"split{size}.duckdb", [evs[i:i + size] for i in range(0, len(evs), size)])
    assert split.content_hash() == whole.content_hash()


def test_a_replayed_batch_is_not_applied_twice(tmp_path: Path) -> None:
    store = build(tmp_path / "l.duckdb", [events()])
    before = store.content_hash()
    assert store.apply(events(), projection()) == len(events())
    assert store.content_hash() == before
    store.close()
    reopened = LineageStore(tmp_path / "l.duckdb")
    assert reopened.last_sequence() == len(events()) and reopened.content_hash() == before


def test_reset_and_replay_is_identical(tmp_path: Path) -> None:
    store = build(tmp_path / "l.duckdb", [events()])
    before = store.content_hash()
    store.reset()
    assert store.last_sequence() == 0
    store.apply(events(), projection())
    assert store.content_hash() == before


def _refs(items: list[dict[str, Any]]) -> set[str]:
    return {i["ref"] for i in items}


def test_graph_edges_and_counts(tmp_path: Path) -> None:
    store = build(tmp_path / "l.duckdb", [events()])
    q = LineageQueries(store)
    edges = set(store.query("SELECT src, type, dst FROM lineage_edges WHERE until_seq IS NULL"))
    assert ("dataset_version:p/reviews@v1", "used", "run:p/r1") in edges
    assert ("commit:c0ffee", "ran_with", "run:p/r1") in edges
    assert ("job:p/j1", "ran_in", "run:p/r1") in edges and ("sweep:p/s1", "part_of", "job:p/j1") in edges
    assert any(s.startswith("environment:") and t == "ran_with" for s, t, _ in edges)
    assert (f"blob:{'c' * 64}", "ran_with", "run:p/r1") in edges  # the code snapshot
    used = store.query("SELECT seq FROM lineage_edges WHERE type = 'used' ORDER BY seq")
    assert used == [(3,), (4,)]  # told twice: two facts, one edge in every answer
    counts = {t: (m, n) for t, m, n in store.query("SELECT * FROM lineage_event_types")}
    assert counts["metrics.logged"] == (False, 1) and counts["run.dataset_used"] == (True, 2)
    # The alias moved: one closed edge from v1, one open from v2; the rename shows through.
    nid, node = q.resolve("model:churn-v2@production", "p", None)
    assert node["ref"] == "model:churn-v2@production"
    assert _refs(q.walk(nid, "upstream", depth=1, projects=None, as_of=None)) == {"model:churn-v2@v2"}
    assert _refs(q.walk(nid, "upstream", depth=1, projects=None, as_of=AsOf(seq=13))) == {"model:churn-v2@v1"}
    up = _refs(q.walk(q.resolve("run:r1", "p", None)[0], "upstream", depth=None, projects=None, as_of=None))
    assert up == {"dataset:reviews@v1", f"blob:{D1}", "commit:c0ffee", "job:j1", "sweep:s1", f"blob:{'c' * 64}",
                  next(r for r in up if r.startswith("environment:"))}
    assert q.statuses([nid_r1 := q.resolve("run:r1", "p", None)[0]])[nid_r1][:2] == ("finished", 16)
    assert q.statuses([nid_r1], AsOf(seq=15))[nid_r1][:2] == ("running", 2)


def test_as_of_a_time(tmp_path: Path) -> None:
    store = build(tmp_path / "l.duckdb", [events()])
    q = LineageQueries(store)
    nid, _ = q.resolve("model:churn-v2@production", "p", None)
    at = AsOf.parse("2026-01-01T00:00:12.500000Z")
    assert _refs(q.walk(nid, "upstream", depth=1, projects=None, as_of=at)) == {"model:churn-v2@v1"}
    assert AsOf.parse("2026-01-01T01:00:12+01:00") == at.__class__(time=at.time.replace(microsecond=0))  # type: ignore[union-attr]


@pytest.mark.parametrize("size", [1, 2, 100])
def test_an_artifact_logged_after_a_version_with_its_content_links_them(tmp_path: Path, size: int) -> None:
    made = [("dataset.version_created", "dataset", "clean", {"version": 1, "manifest_digest": D2, "files": 1,
                                                             "total_size": 3, "description": ""}),
            ("run.created", "run", "r9", {"experiment_id": "e", "name": "prep", "params": {}, "tags": {},
                                          "description": "", "status": "running"}),
            ("run.artifact_logged", "run", "r9", {"name": "clean", "digest": D2, "kind": "directory", "size": 3,
                                                  "files": 1}),
            ("run.artifact_logged", "run", "r9", {"name": "log.txt", "digest": ART, "kind": "file", "size": 3,
                                                  "files": 1})]
    evs = [Event(t, "p", a, i, d, sequence=n + 1, time=f"2026-01-01T00:00:0{n}.000000Z")
           for n, (t, a, i, d) in enumerate(made)]
    store = build(tmp_path / f"l{size}.duckdb", [evs[i:i + size] for i in range(0, len(evs), size)])
    q = LineageQueries(store)
    dv = q.resolve("dataset:clean@v1", "p", None)[0]
    assert _refs(q.walk(dv, "upstream", depth=None, projects=None, as_of=None)) == {f"blob:{D2}", "run:r9"}
    r9 = q.resolve("run:r9", "p", None)[0]
    down = q.walk(r9, "downstream", depth=None, projects=None, as_of=None)
    assert {(i["ref"], i["depth"]) for i in down} == {(f"blob:{D2}", 1), (f"blob:{ART}", 1), ("dataset:clean@v1", 2)}
    assert _refs(q.walk(r9, "downstream", depth=1, projects=None, as_of=None)) == {f"blob:{D2}", f"blob:{ART}"}
    leaf = q.resolve(f"blob:{ART}", None, None)[0]
    assert _refs(q.walk(leaf, "upstream", depth=None, projects=None, as_of=None)) == {"run:r9"}
    assert len(store.query("SELECT * FROM lineage_edges WHERE type = 'produced'")) == 2  # copies not shown


def test_sweep_trials_link_the_sweep_to_their_jobs_and_runs(tmp_path: Path) -> None:
    made = [("sweep.created", "sweep", "s7", {"sweep_id": "s7", "name": "lr-search", "created_at": "x", "spec": {}}),
            ("sweep.trial_started", "sweep", "s7", {"number": 0, "params": {"lr": 0.1}, "system_attrs": {},
                                                    "job_id": "j3", "run_id": "r3"}),
            ("sweep.trial_started", "sweep", "s7", {"number": 1, "params": {"lr": 0.2}, "system_attrs": {},
                                                    "job_id": None, "run_id": None}),
            ("sweep.trial_finished", "sweep", "s7", {"number": 0, "state": "complete", "value": 0.5, "step": 3})]
    evs = [Event(t, "p", a, i, d, sequence=n + 1, time=f"2026-01-01T00:00:0{n}.000000Z")
           for n, (t, a, i, d) in enumerate(made)]
    store = build(tmp_path / "s.duckdb", [evs])
    q = LineageQueries(store)
    nid, node = q.resolve("sweep:s7", "p", None)
    assert node["title"] == "lr-search"
    assert _refs(q.walk(nid, "downstream", depth=None, projects=None, as_of=None)) == {"job:j3", "run:r3"}
    assert ("job:p/j3", "ran_in", "run:p/r3") in set(store.query("SELECT src, type, dst FROM lineage_edges"))
    counts = {t: m for t, m, _ in store.query("SELECT * FROM lineage_event_types")}
    assert counts == {"sweep.created": True, "sweep.trial_started": True, "sweep.trial_finished": False}


def test_model_events_on_the_models_own_subject_give_the_same_graph(tmp_path: Path) -> None:
    """model.* moved from the project's subject to ``...model.<id>``: old logs have the first
    shape, new ones the second; lineage reads ``data.model_id`` and builds the same graph."""
    moved = [Event(e.type, e.project, "model", e.data["model_id"], e.data, sequence=e.sequence, time=e.time)
             if e.type.startswith("model.") else e for e in events()]
    assert sum(e.aggregate == "project" for e in moved) == 1  # only project.created stays there
    old, new = build(tmp_path / "old.duckdb", [events()]), build(tmp_path / "new.duckdb", [moved])
    graph = "SELECT src, type, dst, seq, until_seq FROM lineage_edges ORDER BY ALL"
    assert new.query(graph) == old.query(graph)
    nid, _ = LineageQueries(new).resolve("model:churn-v2@production", "p", None)
    assert _refs(LineageQueries(new).walk(nid, "upstream", depth=1, projects=None, as_of=None)) == {"model:churn-v2@v2"}
