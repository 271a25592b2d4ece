"""A run's pipeline back from the canonical form its ``pipeline_run.started`` event holds.

The event keeps ``Pipeline.to_dict()`` (not the file), so the pipeline a run follows never changes
under it, whatever happens to the file. ``to_dict`` is not the file format (kinds spelled out,
``from`` stored as ``source``, champion model and alias apart), so this turns it back into the
file's shape and loads that with the one loader: the rebuilt pipeline has the same ``to_dict``
and digest, which :func:`pipeline_of` checks.
"""

from __future__ import annotations

import json
from typing import Any

from cairn.pipelines.spec import Pipeline
from cairn.pipelines.validate import load_pipeline


def _special(kind: str, data: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in data.items() if v is not None}
    if kind in ("promote", "deploy") and "source" in out:
        out["from"] = out.pop("source")
    if kind == "gate" and out.get("champion"):
        champion = dict(out["champion"])
        champion["model"] = f"model:{champion['model']}@{champion.pop('alias')}"
        out["champion"] = champion
    return out


def _step(data: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"id": data["id"]}
    if data["needs"]:
        out["needs"] = list(data["needs"])
    if data.get("when") is not None:
        out["when"] = data["when"]
    if data["inputs"]:
        out["inputs"] = dict(data["inputs"])
    if data["outputs"]:
        out["outputs"] = list(data["outputs"])
    kind = data["kind"]
    if kind == "job":
        resources = {k: v for k, v in data["resources"].items() if v is not None}
        if "memory_mib" in resources:
            resources["memory"] = resources.pop("memory_mib")
        out.update(command=data["command"], params=data["params"], resources=resources, queue=data["queue"],
                   retries=data["retries"], env=data["env"])
        if data.get("timeout_s") is not None:
            out["timeout_s"] = data["timeout_s"]
    else:
        out[kind] = _special(kind, data[kind])
    return out


def pipeline_of(definition: dict[str, Any]) -> Pipeline:
    """The :class:`Pipeline` whose ``to_dict()`` is ``definition``; ValueError when it cannot be
    rebuilt exactly (a definition written by another version of the format)."""
    text = json.dumps({"name": definition["name"], "concurrency": definition["concurrency"],
                       "params": definition["params"], "steps": [_step(s) for s in definition["steps"]]})
    pipeline = load_pipeline(text)
    if pipeline.to_dict() != definition:
        raise ValueError(f"pipeline {definition['name']!r}: its stored definition does not rebuild exactly")
    return pipeline
