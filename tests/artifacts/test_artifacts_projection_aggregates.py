"""The artifact store's projection reads only the aggregates it applies (its dataset, artifact_set
and dataset_use, the registry's model and run, the monitor's profile): the event log never delivers
it the others' events (a project's, an experiment's), and the blobs it keeps are referenced as before
(a registered profile, stored here by the monitor, included)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from filtered_projection import follow

from cairn.kernel.envelope import Event
from cairn.services.artifacts.app import ArtifactsSettings, create_app
from cairn.services.artifacts.projection import AGGREGATES

MANIFEST, WEIGHTS, CODE, PROFILE = "aa" * 32, "bb" * 32, "cc" * 32, "dd" * 32


def _foreign(n: int) -> list[Event]:
    """Events of the registry's project aggregate, which the artifact store does not read."""
    return [
        Event(type="project.created", project=f"p{n}", aggregate="project", aggregate_id=f"p{n}",
              data={"name": f"p{n}", "description": "", "default_experiment_id": f"e{n}"}),
        Event(type="experiment.created", project=f"p{n}", aggregate="project", aggregate_id=f"p{n}",
              data={"experiment_id": f"x{n}", "name": "x", "description": ""}),
    ]


def test_the_artifacts_projection_never_reads_other_aggregates(nats_url: str, tmp_path: Path) -> None:
    # before the service starts (it replays) and while it runs (it follows)
    before = [*_foreign(1),
              Event(type="dataset.version_created", project="p", aggregate="dataset", aggregate_id="d",
                    data={"version": 1, "manifest_digest": MANIFEST, "files": 1, "total_size": 1,
                          "description": ""})]
    during = [*_foreign(2),
              Event(type="model_version.created", project="p", aggregate="model", aggregate_id="m",
                    data={"version": 1, "run_id": "r", "artifact_digest": WEIGHTS, "description": ""}),
              Event(type="run.environment_recorded", project="p", aggregate="run", aggregate_id="r",
                    data={"code": {"archive_digest": CODE}}),
              Event(type="profile.registered", project="p", aggregate="profile", aggregate_id=PROFILE,
                    data={"digest": PROFILE, "rows": 10, "columns": 2, "source": {}}),
              *_foreign(3)]
    app = create_app(ArtifactsSettings(nats_url=nats_url, data_dir=tmp_path / "data"))

    def read(store: Any) -> list[tuple[str, str]]:
        refs = store.query("SELECT digest, source FROM blob_refs ORDER BY source")
        return [(r["digest"], r["source"]) for r in refs]

    refs, delivered = asyncio.run(follow(nats_url, app, "projection-artifacts", AGGREGATES, before, during, read))
    assert delivered == 4  # its four; none of the six project events
    assert refs == [(CODE, "code:p/r"), (MANIFEST, "dataset:p/d@v1"), (WEIGHTS, "model_version:p/m@v1"),
                    (PROFILE, f"profile:p/{PROFILE}")]
