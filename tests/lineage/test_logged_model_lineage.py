"""MLflow 3 logged models in the lineage graph: a model's source run produced it, and the files
of a model without a run hang off the model itself (not off a phantom run named like the model)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cairn.kernel.envelope import Event
from cairn.services.lineage.projection import projection
from cairn.services.lineage.queries import LineageQueries
from cairn.services.lineage.store import LineageStore

RUN, HELD, ALONE, FILE = "a" * 32, "m-" + "b" * 32, "m-" + "c" * 32, "d" * 64


def _events() -> list[Event]:
    created = {"experiment_id": "e", "model_type": "", "params": {}, "tags": {}}
    made: list[tuple[str, str, str, dict[str, Any]]] = [
        ("run.created", "run", RUN, {"experiment_id": "e", "name": "train", "params": {}, "tags": {},
                                     "description": "", "status": "running"}),
        ("logged_model.created", "logged_model", HELD, {**created, "name": "held", "source_run_id": RUN}),
        ("logged_model.created", "logged_model", ALONE, {**created, "name": "alone", "source_run_id": "123"}),
        ("run.artifact_logged", "artifact_set", ALONE, {"name": "MLmodel", "digest": FILE, "kind": "file",
                                                        "size": 1, "files": 1}),
    ]
    return [Event(t, "p", agg, agg_id, data, sequence=i + 1, time=f"2026-01-01T00:00:{i:02d}.000000Z")
            for i, (t, agg, agg_id, data) in enumerate(made)]


def _refs(items: list[dict[str, Any]]) -> set[str]:
    return {i["ref"] for i in items}


def test_logged_models_link_to_their_source_run_and_their_own_files(tmp_path: Path) -> None:
    store = LineageStore(tmp_path / "l.duckdb")
    store.apply(_events(), projection())
    q = LineageQueries(store)
    run_nid = q.resolve(f"run:{RUN}", "p", None)[0]
    assert _refs(q.walk(run_nid, "downstream", depth=None, projects=None, as_of=None)) == {f"logged_model:{HELD}"}
    alone = q.resolve(f"logged_model:{ALONE}", "p", None)[0]
    assert _refs(q.walk(alone, "downstream", depth=None, projects=None, as_of=None)) == {f"blob:{FILE}"}
    assert _refs(q.walk(alone, "upstream", depth=None, projects=None, as_of=None)) == set()  # "123" names no run
    phantom = store.query("SELECT count(*) FROM nodes WHERE kind = 'run' AND name = ?", [ALONE])
    assert phantom[0][0] == 0
