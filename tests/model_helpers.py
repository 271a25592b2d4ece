"""A real model folder pushed into a project, for tests that register model versions.

The registry refuses a version whose digest the model's project does not hold (docs/registry.md),
so tests store a small folder the way ``cairn artifacts log DIR --kind model`` does (each file's bytes, then the
manifest) and register the manifest digest the artifact store answers. The folder's content is
fixed by its ``label``, so its digest is known before it is pushed (:func:`model_digest`)."""

from __future__ import annotations

import httpx

from cairn.core import Manifest, ManifestEntry, blake3


def model_files(label: str = "model") -> dict[str, bytes]:
    """A tiny model folder; ``label`` makes its digest differ from another's."""
    return {"MLmodel": f"flavor: test\nname: {label}\n".encode(), "weights.bin": f"weights of {label}".encode() * 8}


def _manifest(files: dict[str, bytes]) -> Manifest:
    return Manifest.from_entries([ManifestEntry(path, "file", len(data), blake3(data).hex())
                                  for path, data in sorted(files.items())])


def model_digest(label: str = "model") -> str:
    """The manifest digest :func:`push_model` answers for ``label``'s folder."""
    return _manifest(model_files(label)).digest


def push_model(api: httpx.Client, project: str, label: str = "model", files: dict[str, bytes] | None = None) -> str:
    """Upload ``files`` (default :func:`model_files`) into ``project`` through ``api`` (a client of
    the gateway's ``/api/v1``) and push their manifest; returns the manifest digest."""
    files = model_files(label) if files is None else files
    for data in files.values():
        api.put(f"/artifacts/projects/{project}/blobs/{blake3(data).hex()}", content=data).raise_for_status()
    resp = api.post(f"/artifacts/projects/{project}/manifests", json={"manifest": _manifest(files).as_dict()})
    resp.raise_for_status()
    digest: str = resp.json()["digest"]
    return digest


def push_model_folder(gateway: str, headers: dict[str, str], project: str, label: str = "model",
                      files: dict[str, bytes] | None = None) -> str:
    """:func:`push_model` with a client of its own (``headers``: the caller's token)."""
    with httpx.Client(base_url=f"{gateway}/api/v1", headers=headers, timeout=30) as api:
        return push_model(api, project, label, files)
