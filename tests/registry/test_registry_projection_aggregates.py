"""The registry's projection reads only its aggregates (project, run, model, dataset_use): the
event log never delivers it another aggregate's events, even those named ``run.*`` (the artifact
store's ``run.artifact_logged``), and what it serves is built from its own as before."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from filtered_projection import follow

from cairn.kernel.envelope import Event
from cairn.services.registry.app import RegistrySettings, create_app
from cairn.services.registry.projection import AGGREGATES, HANDLERS

DIGEST = "ab" * 32

# Where each event the registry applies is appended (the command that appends it names the aggregate).
APPENDED_ON = {
    **{f"project.{v}": "project" for v in ("created", "updated", "archived", "restored")},
    **{f"experiment.{v}": "project" for v in ("created", "updated", "archived", "restored", "tag_set",
                                              "tag_deleted")},
    **{f"model.{v}": "model" for v in ("created", "updated", "archived", "restored", "tag_set", "tag_deleted")},
    **{f"run.{v}": "run" for v in ("created", "started", "finished", "params_logged", "tag_set", "tag_deleted",
                                   "updated", "archived", "restored", "environment_recorded")},
    **{f"model_version.{v}": "model" for v in ("created", "updated", "archived", "restored", "tag_set",
                                               "alias_set", "alias_removed", "created_without_files",
                                               "tag_deleted")},
    "run.dataset_used": "dataset_use",  # the artifact store's
    "metric.summarized": "metrics",  # the metrics service's
    **{f"logged_model.{v}": "logged_model" for v in ("created", "params_logged", "tags_set", "tag_deleted",
                                                     "finalized", "deleted", "metrics_logged")},
    **{f"eval_dataset.{v}": "eval_dataset" for v in ("created", "tags_set", "tag_deleted", "deleted",
                                                     "records_upserted")},
    **{f"scorer.{v}": "scorer" for v in ("registered", "deleted")},
}


def _foreign(n: int) -> list[Event]:
    """Events of aggregates the registry does not read: an artifact set's and a dataset's."""
    return [
        Event(type="run.artifact_logged", project="p", aggregate="artifact_set", aggregate_id=f"r{n}",
              data={"name": f"a{n}", "digest": DIGEST, "kind": "file", "size": 1, "files": 1}),
        Event(type="dataset.version_created", project="p", aggregate="dataset", aggregate_id="d",
              data={"version": n, "manifest_digest": DIGEST, "files": 1, "total_size": 1, "description": ""}),
    ]


def test_every_event_it_applies_is_on_an_aggregate_it_reads() -> None:
    """A handler for a new event type must name where that event is appended (here), and its
    aggregate must be one the projection reads, or the event would never reach it."""
    assert set(HANDLERS) == set(APPENDED_ON)
    assert set(APPENDED_ON.values()) == set(AGGREGATES)


def test_the_registry_projection_never_reads_other_aggregates(nats_url: str, tmp_path: Path) -> None:
    # before the registry starts (it replays) and while it runs (it follows)
    before = [*_foreign(1), Event(type="project.created", project="p", aggregate="project", aggregate_id="p",
                                  data={"name": "p", "description": "", "default_experiment_id": "e0"})]
    during = [*_foreign(2), Event(type="run.dataset_used", project="p", aggregate="dataset_use", aggregate_id="r1",
                                  data={"dataset": "d", "version": 1, "manifest_digest": DIGEST}),
              *_foreign(3)]
    app = create_app(RegistrySettings(nats_url=nats_url, data_dir=tmp_path / "data"))

    def read(store: Any) -> tuple[list[str], list[tuple[str, str, int]]]:
        used = store.query("SELECT run_id, dataset, version FROM run_datasets")
        return ([r["name"] for r in store.query("SELECT name FROM projects")],
                [(r["run_id"], r["dataset"], r["version"]) for r in used])

    (projects, used), delivered = asyncio.run(
        follow(nats_url, app, "projection-registry", AGGREGATES, before, during, read))
    assert delivered == 2  # the project and the dataset use; none of the six others
    assert projects == ["p"]
    assert used == [("r1", "d", 1)]
