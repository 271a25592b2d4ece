"""Many small files in few requests: blob bundles (services/artifacts/api_bundles.py).

A tree of small files sent one request per file is bound by the requests, not the bytes; the
SDK groups files of less than ``BUNDLE_MEMBER_MAX`` bytes into bundles of up to ``BUNDLE_BYTES``
and sends (or fetches) several bundles at once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar
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
from cairn.sdk.transfers import in_pool, retrying

if TYPE_CHECKING:
    from cairn.sdk.artifacts import Artifacts

BUNDLE_BYTES = 16 << 20  # per request: big enough to spread the request's cost, small enough to pipeline
BUNDLE_WORKERS = 4  # bundles in flight at once
GET_WORKERS = 8  # presigned GETs of small blobs in flight at once (S3)
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


def upload(api: Artifacts, project: str, members: list[tuple[str, Path, int]],
           progress: Callable[[int], None] | None, workers: int = BUNDLE_WORKERS) -> None:
    """Upload (digest, path, size) members into ``project`` in bundles, ``workers`` at a time:
    straight to the artifacts service when it offers direct transfers (then one commit makes the
    project hold them all), else through the gateway."""
    if not members:
        return
    plan = _plan(api, "upload", f"/projects/{_q(project)}/blobs/bundle-plan", json={})
    url = plan.get("url")
    in_pool(groups(members, lambda m: m[2]), lambda g: _send(api, project, g, progress, url), workers)
    if url is not None:
        api._call("POST", f"/projects/{_q(project)}/blobs/bundle-commit", json={"token": plan["token"]})


def download(api: Artifacts, members: list[tuple[str, Path, int]], progress: Callable[[int], None] | None,
             workers: int = BUNDLE_WORKERS) -> list[tuple[str, Path, int]]:
    """Download (digest, target, size) members in bundles, ``workers`` at a time (see
    :func:`fetch`), or each from the bucket with its presigned GET, ``GET_WORKERS`` at a time,
    when the store hands those out (S3); returns the members that did not arrive."""
    cut = groups(members, lambda m: m[2])
    if not cut:
        return []
    plan = _plan(api, "download", "/blobs/bundle-plan", json={"bundles": [[m[0] for m in g] for g in cut]})
    urls: list[Any] = plan.get("urls") or [None] * len(cut)
    left: list[tuple[str, Path, int]] = []
    if plan.get("mode") == "presigned":
        singles = [(m, url) for group, group_urls in zip(cut, urls, strict=True)
                   for m, url in zip(group, group_urls, strict=True)]

        def get(item: tuple[tuple[str, Path, int], str]) -> None:
            if not _get_presigned(api, item[0], item[1], progress):
                left.append(item[0])

        in_pool(singles, get, GET_WORKERS)
        return left

    def one(item: tuple[list[tuple[str, Path, int]], str | None]) -> None:
        group, url = item
        left.extend(group[i] for i in fetch(api, [(d, t) for d, t, _ in group], progress, url))

    in_pool(list(zip(cut, urls, strict=True)), one, workers)
    return left


def _get_presigned(api: Artifacts, member: tuple[str, Path, int], url: str,
                   progress: Callable[[int], None] | None) -> bool:
    """One small blob from its presigned GET, verified and written; False when the bucket did
    not give it (the caller then asks Cairn for it alone, which says why)."""
    digest, target, size = member
    resp = retrying(api.client.retries, lambda: api._plain_http().get(url))
    if resp.status_code != 200:
        return False
    data = resp.content
    if blake3(data, threads=1).hex() != digest:
        return False  # corrupt in the bucket: read alone, it fails with Cairn's check
    _write(target, data)
    if progress is not None:
        progress(size)
    return True


def _plan(api: Artifacts, way: str, path: str, json: dict[str, Any]) -> dict[str, Any]:
    """A bundle plan for ``way`` ("upload" or "download"), or ``{"mode": "proxy"}`` without
    asking once the store is known to answer that for that way."""
    known = f"_cairn_bundle_{way}_proxy"
    if api.client.__dict__.get(known):
        return {"mode": "proxy"}
    plan: dict[str, Any] = api._call("POST", path, json=json)
    if plan.get("mode") not in ("direct", "presigned"):
        api.client.__dict__[known] = True
    return plan


def _send(api: Artifacts, project: str, members: list[tuple[str, Path, int]],
          progress: Callable[[int], None] | None, url: str | None) -> None:
    """Upload one bundle: to a plan's ``url``, or through the gateway."""
    def body() -> Iterator[bytes]:
        for digest, path, size in members:
            data = path.read_bytes()
            if len(data) != size:
                raise BundleError(f"{path} changed while uploading ({size} bytes expected, {len(data)} read)")
            yield bundle_header(digest, size)
            yield data
            if progress is not None:
                progress(size)

    headers = {"Content-Type": BUNDLE_MEDIA_TYPE}
    timeout = httpx.Timeout(60.0, write=None)

    def post() -> httpx.Response:
        if url is not None:
            return api._plain_http().post(url, content=body(), headers=headers, timeout=timeout)
        return api.http.post(f"/api/v1/artifacts/projects/{_q(project)}/blobs/bundle", content=body(),
                             headers=headers, timeout=timeout)

    with reaching(api.client.url):
        resp = retrying(api.client.retries, post)
    api.client._answer(resp)


def fetch(api: Artifacts, members: list[tuple[str, Path]], progress: Callable[[int], None] | None,
          url: str | None = None) -> list[int]:
    """Download one bundle (from a plan's ``url``, or through the gateway): each (digest, target)
    is written to a temporary file beside its target, checked against its digest and renamed into
    place. Returns the indexes of the members that did not arrive (a short answer, or a member
    whose bytes do not match its digest, and those after it: the caller fetches them one by one,
    and the service verifies each of those)."""
    query = {"digests": [digest for digest, _ in members]}
    timeout = httpx.Timeout(60.0)
    stream = (api._plain_http().stream("POST", url, json=query, timeout=timeout) if url is not None
              else api.http.stream("POST", "/api/v1/artifacts/blobs/bundle", json=query, timeout=timeout))
    got = 0  # frames come in the order asked
    with reaching(api.client.url), stream as resp:
        if resp.status_code >= 400:
            resp.read()
            api.client._answer(resp)
        reader = _Reader(resp.iter_raw(1 << 20))
        while got < len(members) and (frame := reader.frame()) is not None:
            digest, data = frame
            expected, target = members[got]
            if digest != expected:
                raise BundleError(f"the server sent blob {digest} where {expected} was asked for")
            if blake3(data, threads=1).hex() != digest:
                break  # corrupt in storage (the service does not hash bundle members): read alone,
                # the service verifies it and answers why; this member and the rest are left
            _write(target, data)
            got += 1
            if progress is not None:
                progress(len(data))
    return list(range(got, len(members)))


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
        with memoryview(self._buf) as view:
            data = bytes(view[end + 1:end + 1 + size])  # one copy (a bytearray slice would copy twice)
        del self._buf[:end + 1 + size]
        return digest, data


def _q(part: str) -> str:
    return quote(part, safe="")
