"""Many small files in few requests: blob bundles (services/artifacts/api_bundles.py).

A tree of small files sent one request per file is bound by the requests, not the bytes; the
SDK groups files of less than ``BUNDLE_MEMBER_MAX`` bytes into bundles of up to ``BUNDLE_BYTES``
and sends (or fetches) several bundles at once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar
from urllib.parse import quote

import httpx

from cairn.core import blake3
from cairn.protocol import (
    BUNDLE_MAX_FILES,
    BUNDLE_MEDIA_TYPE,
    BUNDLE_MEMBER_MAX,
    bundle_header,
    parse_bundle_header,
)
from cairn.sdk.client import reaching
from cairn.sdk.transfers import retrying

if TYPE_CHECKING:
    from cairn.sdk.artifacts import Artifacts

BUNDLE_BYTES = 16 << 20  # per request: big enough to spread the request's cost, small enough to pipeline
BUNDLE_WORKERS = 4  # bundles in flight at once
T = TypeVar("T")


class BundleError(ValueError):
    """A bundle answer that does not match what was asked (short answers are not errors)."""


def groups(items: Sequence[T], size_of: Callable[[T], int], max_bytes: int | None = None,
           max_files: int = BUNDLE_MAX_FILES) -> list[list[T]]:
    """Items in order, cut into groups of at most ``max_bytes`` (default ``BUNDLE_BYTES``; a larger
    item alone) and ``max_files``."""
    max_bytes = BUNDLE_BYTES if max_bytes is None else max_bytes
    out: list[list[T]] = []
    current: list[T] = []
    held = 0
    for item in items:
        size = size_of(item)
        if current and (held + size > max_bytes or len(current) >= max_files):
            out.append(current)
            current, held = [], 0
        current.append(item)
        held += size
    if current:
        out.append(current)
    return out


def bundled(size: int) -> bool:
    """Whether a file of ``size`` bytes travels in a bundle."""
    return size < BUNDLE_MEMBER_MAX


def send(api: Artifacts, project: str, members: list[tuple[str, Path, int]],
         progress: Callable[[int], None] | None) -> None:
    """Upload one bundle of (digest, path, size) into ``project``."""
    def body() -> Iterator[bytes]:
        for digest, path, size in members:
            data = path.read_bytes()
            if len(data) != size:
                raise BundleError(f"{path} changed while uploading ({size} bytes expected, {len(data)} read)")
            yield bundle_header(digest, size)
            yield data
            if progress is not None:
                progress(size)

    def post() -> httpx.Response:
        return api.http.post(f"/api/v1/artifacts/projects/{_q(project)}/blobs/bundle", content=body(),
                             headers={"Content-Type": BUNDLE_MEDIA_TYPE}, timeout=httpx.Timeout(60.0, write=None))

    with reaching(api.client.url):
        resp = retrying(api.client.retries, post)
    api.client._answer(resp)


def fetch(api: Artifacts, members: list[tuple[str, Path]], progress: Callable[[int], None] | None) -> list[int]:
    """Download one bundle: each (digest, target) is written to a temporary file beside its
    target, checked against its digest and renamed into place. Returns the indexes of the members
    that did not arrive (a short answer: the caller fetches them one by one)."""
    wanted = {digest: i for i, (digest, _) in reversed(list(enumerate(members)))}
    got: set[int] = set()
    with reaching(api.client.url), api.http.stream(
            "POST", "/api/v1/artifacts/blobs/bundle", json={"digests": list(wanted)},
            timeout=httpx.Timeout(60.0)) as resp:
        if resp.status_code >= 400:
            resp.read()
            api.client._answer(resp)
        reader = _Reader(resp.iter_raw(1 << 20))
        while (frame := reader.frame()) is not None:
            digest, data = frame
            index = wanted.get(digest)
            if index is None or index in got:
                raise BundleError(f"the server sent blob {digest}, which was not asked for")
            actual = blake3(data, threads=1).hex()
            if actual != digest:
                raise BundleError(f"downloaded bytes for {members[index][1]} hash to {actual}, not {digest}")
            _write(members[index][1], data)
            got.add(index)
            if progress is not None:
                progress(len(data))
    return [i for i, (digest, _) in enumerate(members) if wanted[digest] not in got]


def _write(target: Path, data: bytes) -> None:
    tmp = target.with_name(f".cairn-{target.name}.part")
    tmp.write_bytes(data)
    tmp.replace(target)


class _Reader:
    """Frames from a stream of byte chunks (see cairn.protocol's bundle frames)."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._buf = bytearray()

    def _more(self) -> bool:
        chunk = next(self._chunks, None)
        if chunk is None:
            return False
        self._buf += chunk
        return True

    def frame(self) -> tuple[str, bytes] | None:
        while (end := self._buf.find(b"\n", 0, 80)) < 0:
            if len(self._buf) >= 80 or not self._more():
                return None  # the end, or a short answer: the caller fetches what is missing
        digest, size = parse_bundle_header(bytes(self._buf[:end + 1]))
        while len(self._buf) < end + 1 + size:
            if not self._more():
                return None
        data = bytes(self._buf[end + 1:end + 1 + size])
        del self._buf[:end + 1 + size]
        return digest, data


def _q(part: str) -> str:
    return quote(part, safe="")
