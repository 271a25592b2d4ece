"""MLflow's source tags for a run whose code is a notebook: ``mlflow.source.type = NOTEBOOK`` and
``mlflow.source.name`` = the notebook's name, read from the run's code record (``kind: notebook``,
cairn.sdk.notebook), so that MLflow's UI and clients show where a notebook run came from.

The record lives in the registry's run record (``GET .../runs/<id>/environment``), not in the run,
so this is one more registry call: made for ``runs/get`` only, not for every run of a search."""

from __future__ import annotations

from typing import Any

from cairn.services.gateway.mlflow.calls import Call
from cairn.services.gateway.mlflow.errors import ServiceError

SOURCE_TYPE_TAG = "mlflow.source.type"
SOURCE_NAME_TAG = "mlflow.source.name"
NOTEBOOK_SOURCE = "NOTEBOOK"


def notebook_source_tags(record: dict[str, Any] | None) -> dict[str, str]:
    """The source tags a run record implies: those of its notebook, or none (a work tree, no record)."""
    code = (record or {}).get("code") or {}
    if code.get("kind") != "notebook":
        return {}
    name = (code.get("notebook") or {}).get("name")
    return {SOURCE_TYPE_TAG: NOTEBOOK_SOURCE, SOURCE_NAME_TAG: str(name or "notebook.ipynb")}


async def source_tags(call: Call, environment_path: str) -> dict[str, str]:
    """The run's source tags; none when the run has no record (404: also a run that does not exist,
    which the caller reports itself)."""
    try:
        record = await call.registry("GET", environment_path)
    except ServiceError as err:
        if err.status == 404:
            return {}
        raise
    return notebook_source_tags(record)
