"""Profiles in the lineage graph: ``dataset@version -> profile`` or ``run -> profile``
(``summarised_as``), from the monitor's ``profile.registered``."""

from __future__ import annotations

from pathlib import Path

from cairn.kernel.envelope import Event
from cairn.services.lineage.projection import projection
from cairn.services.lineage.queries import LineageQueries
from cairn.services.lineage.store import LineageStore

D1, D2 = "1" * 64, "2" * 64


def test_a_registered_profile_is_downstream_of_what_it_summarises(tmp_path: Path) -> None:
    made = [
        ("run.dataset_used", "dataset_use", "r1", {"dataset": "fraud", "version": 3}),
        ("profile.registered", "profile", D1, {"digest": D1, "rows": 10, "columns": 2,
                                               "source": {"dataset": "fraud", "version": 3}}),
        ("profile.registered", "profile", D2, {"digest": D2, "rows": 5, "columns": 2, "source": {"run": "r1"}}),
    ]
    evs = [Event(t, "p", agg, agg_id, data, sequence=i + 1, time=f"2026-01-01T00:00:{i:02d}.000000Z")
           for i, (t, agg, agg_id, data) in enumerate(made)]
    store = LineageStore(tmp_path / "l.duckdb")
    store.apply(evs, projection())
    q = LineageQueries(store)
    version = q.resolve("dataset:fraud@v3", "p", None)[0]
    below = q.walk(version, "downstream", depth=None, projects=None, as_of=None)
    kinds = sorted(i["kind"] for i in below)
    assert kinds == ["profile", "profile", "run"]
    assert {i["ref"] for i in below if i["kind"] == "profile"} == {f"profile:{D1}", f"profile:{D2}"}
