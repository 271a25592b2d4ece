"""A real model folder pushed into a project, for tests that register model versions.

The registry refuses a version whose digest the model's project does not hold (docs/registry.md),
so tests store a small folder the way ``cairn artifacts push`` does (each file's bytes, then the
manifest) and register the manifest digest the artifact store answers."""

from __future__ import annotations

import httpx

from cairn.core import Manifest, ManifestEntry, blake3


def model_files(label: str = "model") -> dict[str, bytes]:
    """A tiny model folder; ``label`` makes its digest differ from another's."""
    return {"MLmodel": f"flavor: test\nname: {label}\n".encode(), "weights.bin": f"weights of {label}".encode() * 8}


def push_model_folder(gateway: str, headers: dict[str, str], project: str, label: str = "model",
                      files: dict[str, bytes] | None = None) -> str:
    """Upload ``files`` (default :func:`model_files`) into ``project`` and push their manifest;
    returns the manifest digest, which a model version may then name."""
    files = model_files(label) if files is None else files
    entries = []
    with httpx.Client(base_url=f"{gateway}/api/v1/artifacts", headers=headers, timeout=30) as http:
        for path, data in sorted(files.items()):
            digest = blake3(data).hex()
            http.put(f"/projects/{project}/blobs/{digest}", content=data).raise_for_status()
            entries.append(ManifestEntry(path, "file", len(data), digest))
        manifest = Manifest.from_entries(entries)
        resp = http.post(f"/projects/{project}/manifests", json={"manifest": manifest.as_dict()})
        resp.raise_for_status()
    digest: str = resp.json()["digest"]
    return digest
