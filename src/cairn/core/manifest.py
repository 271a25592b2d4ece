"""Dataset manifests: the sorted list of a tree's files and links, and its canonical encoding.

Canonical encoding, version 1 (what the dataset digest is the BLAKE3 of)::

    b"cairn-manifest/1\\n"
    then one record per entry, in ascending order of the path's bytes:
      file:    b"f " + <len(path)> + b":" + path + b" " + <size> + b" " + <digest> + b"\\n"
      symlink: b"l " + <len(path)> + b":" + path + b" " + <len(target)> + b":" + target + b"\\n"

``path`` is the entry's path relative to the tree root, '/'-separated, as the file system's bytes
(``os.fsencode``); ``target`` is the link's target exactly as ``readlink`` returns it; numbers are
ASCII decimal; ``digest`` is 64 lowercase hex digits. Variable fields are length-prefixed, so no
two manifests share an encoding, whatever bytes names contain. Directories are not entries: an
empty directory does not change the digest.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any, Literal

from cairn import _core

__all__ = [
    "MANIFEST_HEADER",
    "Manifest",
    "ManifestEntry",
    "check_relative_path",
    "encode_manifest",
]

MANIFEST_HEADER = b"cairn-manifest/1\n"

EntryKind = Literal["file", "symlink"]


@dataclass(frozen=True)
class ManifestEntry:
    """One file or symbolic link of a tree.

    For a file, ``size`` and ``digest`` describe its bytes. For a symlink (recorded, never
    followed), they describe its target string, the way git stores a link as a blob of its target,
    and ``target`` holds that string.
    """

    path: str
    kind: EntryKind
    size: int
    digest: str
    target: str | None = None

    def sort_key(self) -> bytes:
        """The canonical order: the path's file-system bytes."""
        return os.fsencode(self.path)


@dataclass(frozen=True)
class Manifest:
    """A tree's entries in canonical order, with the dataset digest over their encoding.

    ``skipped`` names special files (fifos, sockets, devices) left out with
    ``on_special="skip"``; they are not part of the digest.
    """

    entries: tuple[ManifestEntry, ...]
    digest: str
    skipped: tuple[str, ...] = field(default=())

    @classmethod
    def from_entries(cls, entries: list[ManifestEntry], skipped: tuple[str, ...] = ()) -> Manifest:
        """Sorts the entries canonically and computes the digest; refuses unsafe paths."""
        for e in entries:
            check_relative_path(e.path)
        ordered = tuple(sorted(entries, key=ManifestEntry.sort_key))
        for a, b in pairwise(ordered):
            if a.path == b.path:
                raise ValueError(f"duplicate manifest path {a.path!r}")
        return cls(ordered, _core.blake3(encode_manifest(ordered), 0).hex(), skipped)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Manifest:
        """Rebuilds a manifest from :meth:`as_dict` output, checking paths and the digest."""
        entries = [
            ManifestEntry(e["path"], e["kind"], int(e["size"]), e["digest"], e.get("target"))
            for e in data["entries"]
        ]
        manifest = cls.from_entries(entries, tuple(data.get("skipped", ())))
        if "digest" in data and data["digest"] != manifest.digest:
            raise ValueError(
                f"manifest digest {data['digest']} does not match its entries ({manifest.digest})"
            )
        return manifest

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form: ``{"digest", "entries": [{"path", "kind", "size", "digest"[, "target"]}],
        "skipped"}``."""
        entries: list[dict[str, Any]] = []
        for e in self.entries:
            item: dict[str, Any] = {
                "path": e.path,
                "kind": e.kind,
                "size": e.size,
                "digest": e.digest,
            }
            if e.target is not None:
                item["target"] = e.target
            entries.append(item)
        return {"digest": self.digest, "entries": entries, "skipped": list(self.skipped)}

    def encode(self) -> bytes:
        """The canonical encoding (see the module docstring); its BLAKE3 is ``digest``."""
        return encode_manifest(self.entries)

    @property
    def total_size(self) -> int:
        """Bytes in all files (links' targets not counted)."""
        return sum(e.size for e in self.entries if e.kind == "file")

    def __len__(self) -> int:
        return len(self.entries)

    def __iter__(self) -> Iterator[ManifestEntry]:
        return iter(self.entries)

    def __getitem__(self, path: str) -> ManifestEntry:
        for e in self.entries:
            if e.path == path:
                return e
        raise KeyError(path)


def check_relative_path(path: str) -> None:
    """Refuses paths that could land outside a tree: absolute, empty, '.', '..' or empty parts."""
    parts = path.split("/")
    if not path or path.startswith("/") or any(p in ("", ".", "..") for p in parts) or "\0" in path:
        raise ValueError(
            f"manifest path {path!r} is not a plain relative path ('/'-separated names, no '.', "
            "'..' or empty parts, not absolute)"
        )


def encode_manifest(entries: tuple[ManifestEntry, ...] | list[ManifestEntry]) -> bytes:
    """Canonical encoding of entries that are already in canonical order."""
    parts = [MANIFEST_HEADER]
    for e in entries:
        path = os.fsencode(e.path)
        if e.kind == "file":
            parts.append(b"f %d:%s %d %s\n" % (len(path), path, e.size, e.digest.encode("ascii")))
        elif e.kind == "symlink":
            if e.target is None:
                raise ValueError(f"symlink entry {e.path!r} has no target")
            target = os.fsencode(e.target)
            parts.append(b"l %d:%s %d:%s\n" % (len(path), path, len(target), target))
        else:
            raise ValueError(f"unknown manifest entry kind {e.kind!r} for {e.path!r}")
    return b"".join(parts)
