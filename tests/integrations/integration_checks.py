"""What every integration test checks the same way: a run's params, a metric's steps, and that the
run's model loads back as ``cairn serve`` loads it and answers like the trained model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cairn.sdk.client import Client


def steps_and_values(client: Client, project: str, run_id: str, key: str) -> tuple[list[int], list[float]]:
    history = client.metric_history(project, run_id, key, as_lists=True)
    return [int(s) for s in history["steps"]], [float(v) for v in history["values"]]


def served_answers(client: Client, project: str, name: str, version: dict[str, Any], rows: Any,
                   cache: Path) -> np.ndarray:
    """The logged version loaded through the package loader ``cairn serve`` uses, asked ``rows``
    as the DataFrame the HTTP layer builds from the signature's columns."""
    model = client.load_model(project, f"{name}/{version['version']}", cache_dir=cache)
    array = np.asarray(rows)
    names = [c["name"] for c in model.signature] or [str(i) for i in range(array.shape[1])]
    return np.asarray(model.predict(pd.DataFrame(array, columns=names)), dtype=np.float64)


def model_versions(client: Client, project: str, name: str) -> list[dict[str, Any]]:
    versions: list[dict[str, Any]] = client.request(
        "GET", f"/api/v1/registry/projects/{project}/models/{name}/versions")["versions"]
    return versions
