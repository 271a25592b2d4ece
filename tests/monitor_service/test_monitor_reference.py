"""The reference a deployment's windows drift against: the one set for it, else the newest
profile registered for a dataset version that the run of its current model version used; the
monitor's own projection of the deployments' and registry's events, on a real SQLite file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cairn.kernel.envelope import Event
from cairn.services.monitor.projection import projection
from cairn.services.monitor.store import MonitorStore

P1, P2, P3 = "1" * 64, "2" * 64, "3" * 64


def apply(store: MonitorStore, made: list[tuple[str, str, str, dict[str, Any]]], first: int) -> None:
    events = [Event(t, "shop", agg, agg_id, data, sequence=first + i) for i, (t, agg, agg_id, data) in enumerate(made)]
    store.apply(events, projection())


def profile(digest: str, source: dict[str, Any]) -> tuple[str, str, str, dict[str, Any]]:
    return "profile.registered", "profile", digest, {"digest": digest, "rows": 1, "columns": 1, "source": source}


def test_the_default_reference_follows_the_deployed_versions_training_data(tmp_path: Path) -> None:
    store = MonitorStore(tmp_path / "m.sqlite3")
    apply(store, [
        ("model_version.created", "model", "m1", {"version": 1, "run_id": "r1", "artifact_digest": "a" * 64,
                                                   "description": ""}),
        ("model_version.created", "model", "m1", {"version": 2, "run_id": "r2", "artifact_digest": "a" * 64,
                                                   "description": ""}),
        ("run.dataset_used", "dataset_use", "r1", {"dataset": "fraud", "version": 3}),
        ("run.dataset_used", "dataset_use", "r2", {"dataset": "fraud", "version": 4}),
        ("deployment.created", "deployment", "web", {
            "environment": "prod", "model": "fraud-model", "model_id": "m1", "follows": None, "version": 1,
            "replicas": 1, "sample_rate": 1.0, "batching": None, "public": False}),
    ], 1)
    assert store.reference("shop", "web") == {"profile": None, "chosen": None}
    apply(store, [profile(P1, {"dataset": "fraud", "version": 3}), profile(P2, {"dataset": "fraud", "version": 4}),
                  profile(P3, {"run": "r1"})], 6)
    assert store.reference("shop", "web") == {"profile": P1, "chosen": "default",
                                              "source": {"dataset": "fraud", "version": 3}}
    apply(store, [("deployment.version_changed", "deployment", "web",
                   {"from": 1, "to": 2, "why": "manual", "model_id": "m1"})], 9)
    assert store.reference("shop", "web")["profile"] == P2
    apply(store, [("monitor.reference_set", "monitor", "web", {"deployment": "web", "profile": P3})], 10)
    assert store.reference("shop", "web") == {"profile": P3, "chosen": "set"}
