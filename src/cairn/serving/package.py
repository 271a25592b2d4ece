"""A model package: the model's files plus ``cairn-model.json`` (flavour, file, signature,
batchable), logged as a registry model version and loaded back from a digest-keyed cache.

The version's ``artifact_digest`` is the digest of a manifest of the package directory (the same
shape the MLflow layer registers), so a model logged through the MLflow API, which has an
``MLmodel`` file and no descriptor, loads as the ``mlflow`` flavour.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from cairn.kernel.errors import InvalidInput
from cairn.serving.flavours import FLAVOURS, LoadedModel, flavour_of_path, load_flavour

if TYPE_CHECKING:
    from cairn.sdk.client import Client

DESCRIPTOR = "cairn-model.json"
EXAMPLE = "input_example.json"
TYPES = ("double", "float", "long", "integer", "boolean", "string")


def _column_type(dtype: Any) -> str:
    kind = np.dtype(dtype).kind if not isinstance(dtype, pd.StringDtype) else "O"
    return {"f": "double", "i": "long", "u": "long", "b": "boolean"}.get(kind, "string")


def example_frame(example: Any) -> pd.DataFrame:
    """An input example as a DataFrame (a 2-D array gets columns ``0..n-1``)."""
    if isinstance(example, pd.DataFrame):
        return example
    array = np.asarray(example)
    if array.ndim == 1:
        array = array.reshape(1, -1)
    return pd.DataFrame(array, columns=[str(i) for i in range(array.shape[1])])


def infer_signature(example: Any) -> list[dict[str, str]]:
    """Input columns with types, from an input example."""
    frame = example_frame(example)
    return [{"name": str(c), "type": _column_type(frame[c].dtype)} for c in frame.columns]


def _check_signature(signature: list[dict[str, str]]) -> list[dict[str, str]]:
    for col in signature:
        if not isinstance(col, dict) or "name" not in col or col.get("type") not in TYPES:
            raise InvalidInput(f"signature column {col!r} needs a name and a type in {', '.join(TYPES)}")
    return [{"name": str(c["name"]), "type": c["type"]} for c in signature]


def _write_model(model: Any, dest: Path, flavour: str | None) -> tuple[str, str]:
    """Write an in-memory model (or copy a model file/dir) into ``dest``; (flavour, file)."""
    if isinstance(model, (str, os.PathLike)):
        src = Path(model)
        flavour = flavour or flavour_of_path(src)
        if src.is_dir():
            shutil.copytree(src, dest, dirs_exist_ok=True)
            return flavour, "."
        shutil.copy2(src, dest / src.name)
        return flavour, src.name
    module = type(model).__module__
    if module.startswith("torch"):
        import torch

        if isinstance(model, torch.export.ExportedProgram):
            torch.export.save(model, dest / "model.pt2")
            return "torch_export", "model.pt2"
        if not isinstance(model, torch.jit.ScriptModule):
            model = torch.jit.script(model)
        torch.jit.save(model, str(dest / "model.pt"))
        return "torchscript", "model.pt"
    if module.startswith("onnx"):
        (dest / "model.onnx").write_bytes(model.SerializeToString())
        return "onnx", "model.onnx"
    if flavour not in (None, "sklearn"):
        raise InvalidInput(f"pass a {flavour} model as a file path; only scikit-learn, torch and onnx "
                           "models are saved from memory")
    import joblib

    joblib.dump(model, dest / "model.joblib")
    return "sklearn", "model.joblib"


def save_model(model: Any, dest: str | os.PathLike[str], *, flavour: str | None = None,
               signature: list[dict[str, str]] | None = None, input_example: Any = None,
               batchable: bool = True) -> Path:
    """Write a servable package directory: the model file(s) and ``cairn-model.json``."""
    if flavour is not None and flavour not in FLAVOURS:
        raise InvalidInput(f"unknown flavour {flavour!r}; one of {', '.join(FLAVOURS)}")
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    flavour, file = _write_model(model, dest, flavour)
    if signature is None and input_example is not None:
        signature = infer_signature(input_example)
    descriptor = {"format": 1, "flavour": flavour, "file": file, "batchable": bool(batchable),
                  "signature": {"inputs": _check_signature(signature or [])}}
    if input_example is not None:
        frame = example_frame(input_example)
        (dest / EXAMPLE).write_text(frame.to_json(orient="split", index=False))
        descriptor["input_example"] = EXAMPLE
    (dest / DESCRIPTOR).write_text(json.dumps(descriptor, indent=2, sort_keys=True))
    return dest


def log_model(client: Client, project: str, run_id: str, model: Any, name: str, *, flavour: str | None = None,
              signature: list[dict[str, str]] | None = None, input_example: Any = None,
              batchable: bool = True) -> dict[str, Any]:
    """Package ``model``, upload it, record it on the run and make a new version of model
    ``name`` (created if missing); returns the version record."""
    from cairn.core import fingerprint_tree
    from cairn.sdk.client import ApiError

    with tempfile.TemporaryDirectory(prefix="cairn-model-") as tmp:
        root = save_model(model, Path(tmp) / "model", flavour=flavour, signature=signature,
                          input_example=input_example, batchable=batchable)
        manifest = fingerprint_tree(root)
        client.artifacts.upload_tree(project, manifest, root)
        digest = client.request("POST", f"/api/v1/artifacts/projects/{project}/manifests",
                                json={"manifest": manifest.as_dict()})["digest"]
    client.request("POST", f"/api/v1/artifacts/projects/{project}/runs/{run_id}/artifacts",
                   json={"name": f"model-{name}-{digest[:16]}", "digest": digest, "kind": "directory"})
    try:
        client.get_model(project, name)
    except ApiError as err:
        if err.status != 404:
            raise
        client.create_model(project, name)
    return client.create_model_version(project, name, run_id=run_id, artifact_digest=digest)


@dataclass
class ModelRef:
    """``name@alias`` or ``name/3`` (``name`` alone is ``name@latest`` is not allowed: be explicit)."""

    name: str
    alias: str | None = None
    version: int | None = None

    @classmethod
    def parse(cls, ref: str) -> ModelRef:
        if "@" in ref:
            name, _, alias = ref.partition("@")
            if name and alias:
                return cls(name, alias=alias)
        elif "/" in ref:
            name, _, number = ref.rpartition("/")
            if name and number.isdigit() and int(number) > 0:
                return cls(name, version=int(number))
        raise InvalidInput(f"model reference {ref!r} should be NAME@ALIAS or NAME/VERSION (e.g. fraud@production)")

    def __str__(self) -> str:
        return f"{self.name}@{self.alias}" if self.alias else f"{self.name}/{self.version}"


def resolve(client: Client, project: str, ref: ModelRef) -> dict[str, Any]:
    """The version record a reference points at now."""
    if ref.alias:
        return client.get_alias(project, ref.name, ref.alias)
    return client.request("GET", f"/api/v1/registry/projects/{project}/models/{ref.name}/versions/{ref.version}")


def default_cache() -> Path:
    return Path(os.environ.get("CAIRN_MODEL_CACHE", Path.home() / ".cache" / "cairn" / "models"))


def fetch_package(client: Client, digest: str, cache: Path | None = None) -> Path:
    """The package directory for a manifest digest, downloaded (verified) once per cache."""
    from cairn.core import Manifest
    from cairn.sdk.artifacts import restore_tree

    cache = cache or default_cache()
    target = cache / digest
    if (target / ".complete").exists():
        return target
    cache.mkdir(parents=True, exist_ok=True)
    if target.exists():  # left half-written by a process that died: never used, start over
        shutil.rmtree(target, ignore_errors=True)
    manifest = Manifest.from_dict(client.request("GET", f"/api/v1/artifacts/manifests/{digest}"))
    staging = Path(tempfile.mkdtemp(prefix=f".{digest[:12]}-", dir=cache))
    try:
        restore_tree(client.artifacts, manifest, staging, None)
        (staging / ".complete").touch()
        try:
            os.replace(staging, target)
        except OSError:  # another process finished it first
            if not (target / ".complete").exists():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def open_package(root: Path) -> LoadedModel:
    """Load a package directory (Cairn's descriptor, or an MLflow ``MLmodel`` directory)."""
    descriptor_path = root / DESCRIPTOR
    if not descriptor_path.exists():
        if (root / "MLmodel").exists():
            return LoadedModel("mlflow", load_flavour("mlflow", root), batchable=True)
        raise InvalidInput(f"{root} has neither {DESCRIPTOR} nor an MLflow MLmodel file")
    descriptor = json.loads(descriptor_path.read_text())
    flavour, file = descriptor["flavour"], descriptor["file"]
    call = load_flavour(flavour, (root / file) if file != "." else root)
    example = None
    if descriptor.get("input_example"):
        example = pd.read_json(root / descriptor["input_example"], orient="split")
        example.columns = [str(c) for c in example.columns]
    signature = _check_signature(descriptor.get("signature", {}).get("inputs", []))
    return LoadedModel(flavour, call, signature, bool(descriptor.get("batchable", True)), example)


def held_digest(record: dict[str, Any]) -> str:
    """The version's package digest; a version registered without files (an MLflow source Cairn
    could not resolve) cannot be served, and says so instead of failing on a missing digest."""
    digest = record.get("artifact_digest")
    if not digest:
        unheld = record.get("files_unavailable") or {}
        raise InvalidInput(f"version {record.get('version')} of model {record.get('model')!r} was registered from "
                           f"{unheld.get('source', 'a source')!r}, whose files Cairn does not hold "
                           f"({unheld.get('reason', 'unknown')}); register a version from logged files to serve it",
                           details={"field": "version"})
    return str(digest)


def load_model(client: Client, project: str, ref: str, cache: Path | None = None) -> tuple[LoadedModel, dict[str, Any]]:
    """Load ``name@alias`` or ``name/3``: (the model, its version record)."""
    record = resolve(client, project, ModelRef.parse(ref))
    return open_package(fetch_package(client, held_digest(record), cache)), record
