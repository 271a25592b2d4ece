"""Runs' metric summaries in the registry, without processes: metric.summarized events applied to
a real SQLite read model, then run search compiled and run on it. A late or repeated event does not
move a summary back; NaN and infinities match no comparison and sort last."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from cairn.kernel.envelope import Event
from cairn.services.registry.projection import projection
from cairn.services.registry.run_metrics import run_last_values
from cairn.services.registry.search import compile_search
from cairn.services.registry.store import RegistryStore

PROJECT = "rm"


def _summary(run_id: str, last: Any, count: int, key: str = "val_loss") -> dict[str, Any]:
    return {"run_id": run_id, "key": key, "count": count, "min": None, "max": None, "last": last,
            "last_step": count - 1, "last_time": 1.0}


def _events(*batches: list[dict[str, Any]], project: str = PROJECT) -> list[Event]:
    return [Event(type="metric.summarized", project=project, aggregate="metrics", aggregate_id=project,
                  data={"summaries": rows}, actor="metrics:writer", sequence=n)
            for n, rows in enumerate(batches, 100)]


def _store(tmp_path: Path, runs: list[str]) -> RegistryStore:
    store = RegistryStore(tmp_path / "registry.sqlite3")
    with store.transaction() as conn:
        for n, run_id in enumerate(runs):
            conn.execute("INSERT INTO runs(id, project, experiment_id, name, status, description, archived, "
                         "created_at, updated_at, created_by) VALUES(?, ?, 'e', ?, 'running', '', 0, ?, ?, 'a')",
                         (run_id, PROJECT, run_id, f"2026-01-0{n + 1}", f"2026-01-0{n + 1}"))
    return store


def _search(store: RegistryStore, filter_text: str | None = None, order_by: list[str] | None = None) -> list[str]:
    sql, args, _ = compile_search(PROJECT, experiment_ids=None, filter_text=filter_text, include_archived=False,
                                  order_by=order_by, page_size=100, page_token=None)
    return [row["id"] for row in store.query(sql, args)]


def test_search_filters_and_orders_by_projected_last_values(tmp_path: Path) -> None:
    store = _store(tmp_path, ["a", "b", "c", "d", "e"])
    store.apply(_events([_summary("a", 0.1, 2), _summary("b", 0.5, 2), _summary("c", 0.2, 2),
                         _summary("d", "NaN", 1)]), projection())
    other = _events([_summary("a", 0.0, 9)], project="other")  # same run id in another project: kept apart
    store.apply([replace(e, sequence=200) for e in other], projection())
    assert sorted(_search(store, "metrics.val_loss < 0.3")) == ["a", "c"]  # NaN matches nothing
    assert _search(store, "metrics.val_loss >= 0") == _search(store, "metrics.val_loss > -1") != []
    assert _search(store, order_by=["metrics.val_loss DESC"]) == ["b", "c", "a", "d", "e"]  # no value: last
    assert _search(store, order_by=["metrics.val_loss ASC"]) == ["a", "c", "b", "d", "e"]
    assert run_last_values(store, PROJECT, "d") == {"val_loss": "NaN"}
    assert run_last_values(store, "other", "a") == {"val_loss": 0.0}


def test_a_late_or_repeated_summary_does_not_move_a_value_back(tmp_path: Path) -> None:
    store = _store(tmp_path, ["a"])
    newer, older = [_summary("a", 0.3, 10)], [_summary("a", 0.9, 4)]
    store.apply(_events(newer, older, newer), projection())
    assert run_last_values(store, PROJECT, "a") == {"val_loss": 0.3}
    assert _search(store, "metrics.val_loss < 0.5") == ["a"]


def test_replaying_the_same_events_into_a_fresh_store_gives_the_same_answers(tmp_path: Path) -> None:
    events = _events([_summary("a", 0.4, 3), _summary("b", 0.2, 3)], [_summary("a", 0.1, 5)],
                     [_summary("b", "Infinity", 6, key="grad")])
    answers = []
    for name in ("first", "rebuilt"):
        (tmp_path / name).mkdir()
        store = _store(tmp_path / name, ["a", "b"])
        store.apply(events, projection())
        answers.append((_search(store, "metrics.val_loss < 0.3", ["metrics.val_loss DESC"]),
                        _search(store, order_by=["metrics.grad ASC"]), run_last_values(store, PROJECT, "b")))
    assert answers[0] == answers[1]
    assert answers[0] == (["b", "a"], ["a", "b"], {"grad": "Infinity", "val_loss": 0.2})
