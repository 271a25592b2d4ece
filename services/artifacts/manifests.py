"""Manifests stored as blobs: the canonical encoding itself, so a manifest's blob digest is the
dataset digest, and reading it back is verified like any blob.

Decoding re-checks every path (:func:`cairn.core.manifest.check_relative_path`): a manifest can
never name ``../x`` or ``/etc/x``.
"""

from __future__ import annotations

import os
from typing import Any

from cairn.core import Manifest, ManifestEntry, blake3
from cairn.core.manifest import MANIFEST_HEADER
from cairn.kernel.errors import InvalidInput


def is_manifest(data: bytes) -> bool:
    return data.startswith(MANIFEST_HEADER)


def _take_prefixed(data: bytes, pos: int) -> tuple[bytes, int]:
    colon = data.index(b":", pos)
    length = int(data[pos:colon])
    start = colon + 1
    return data[start:start + length], start + length


def decode_manifest(data: bytes) -> Manifest:
    """Parse the canonical encoding (see docs/core.md); raises ValueError if it is malformed."""
    if not is_manifest(data):
        raise ValueError("not a cairn manifest (missing the cairn-manifest/1 header)")
    entries: list[ManifestEntry] = []
    pos = len(MANIFEST_HEADER)
    while pos < len(data):
        kind = data[pos:pos + 2]
        raw_path, pos = _take_prefixed(data, pos + 2)
        path = os.fsdecode(raw_path)
        if kind == b"f ":
            end = data.index(b"\n", pos)
            size_s, digest = data[pos + 1:end].split(b" ")
            entries.append(ManifestEntry(path, "file", int(size_s), digest.decode("ascii")))
        elif kind == b"l ":
            target, end = _take_prefixed(data, pos + 1)
            entries.append(ManifestEntry(path, "symlink", len(target), blake3(target).hex(),
                                         os.fsdecode(target)))
        else:
            raise ValueError(f"unknown manifest record at byte {pos}")
        pos = end + 1
    manifest = Manifest.from_entries(entries)
    if manifest.encode() != data:
        raise ValueError("manifest is not in canonical form")
    return manifest


def manifest_from_request(body: dict[str, Any]) -> Manifest:
    """A manifest sent by a client (``Manifest.as_dict`` form), checked: safe relative paths,
    no duplicates, digest matching the entries. Unsafe input is a 422 naming the problem."""
    try:
        for e in body["entries"]:
            if e.get("kind") not in ("file", "symlink"):
                raise ValueError(f"entry {e.get('path')!r} has kind {e.get('kind')!r}; "
                                 "expected 'file' or 'symlink'")
        return Manifest.from_dict(body)
    except (KeyError, TypeError, ValueError) as err:
        raise InvalidInput(f"manifest refused: {err}", details={"field": "manifest"}) from None
