"""Registered profiles: validated by the statistics library (``cairn.monitor.profile.Profile``),
stored as content-addressed blobs in the artifacts service (the canonical JSON; its digest is
BLAKE3 of those bytes, the same address the artifacts service gives them), and announced by
``profile.registered`` (once per project: the same profile again is a no-op).

Why the artifacts service: it is where every content-addressed byte of the platform lives (its
S3 backend included, its GC, its access rules), so a profile is stored once, with everything
else. The monitor uploads with its own signed identity into the profile's project
(``PUT /projects/{project}/blobs/{digest}``), which records ``blob.possessed`` for that project:
the project's members can then download the profile through the artifacts API, and nobody else
can. The upload comes before the event is appended, so an event never names a profile that is
not stored; when the artifacts service does not answer, registering is a 503 and appends nothing.

Reads (``GET /profiles/{digest}``, and the reference each window closes against) verify the bytes
against the digest and keep them in a small in-process cache: profiles never change, so a window
close does not fetch its reference each time. A monitor data dir from before profiles moved
keeps ``<data dir>/monitor/profiles/<digest>.json`` files; those are still read first (verified
the same way), and registering such a profile again uploads it to the artifacts service.
"""

from __future__ import annotations

import asyncio
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import httpx
import orjson

from cairn.kernel.commands import CommandContext
from cairn.kernel.errors import InvalidInput, NotFound, Unavailable
from cairn.kernel.service import ServiceRuntime
from cairn.services.monitor import domain
from cairn.services.monitor.store import MonitorStore
from cairn.services.monitor.windows import Reference

MAX_SOURCE_NAME = 128
CACHE_BYTES = 64 << 20  # profiles kept in memory (a reference of 1,000 numeric columns is a few MiB)
TIMEOUT_S = 30.0


def _blake3_hex(data: bytes) -> str:
    from cairn.core.fingerprint import blake3

    return blake3(data).hex()


class ProfileBlobs:
    """Profile bytes in the artifacts service at ``artifacts_url`` (empty: not configured),
    read back verified and cached. ``headers`` gives the monitor's signed internal identity.
    Uploads are async (the request path); reads are blocking, since the windows read their
    reference in worker threads (routes call them with ``asyncio.to_thread``)."""

    def __init__(self, artifacts_url: str, headers: Callable[[], dict[str, str]], legacy_root: Path,
                 *, cache_bytes: int = CACHE_BYTES) -> None:
        self.url = artifacts_url.rstrip("/")
        self.headers = headers
        self.legacy_root = legacy_root
        self.cache_bytes = cache_bytes
        self._cache: OrderedDict[str, bytes] = OrderedDict()
        self._cached = 0
        self._lock = threading.Lock()
        self._async = httpx.AsyncClient(timeout=TIMEOUT_S)
        self._sync = httpx.Client(timeout=TIMEOUT_S)

    async def close(self) -> None:
        await self._async.aclose()
        self._sync.close()

    def _require_url(self) -> str:
        if not self.url:
            raise Unavailable("CAIRN_ARTIFACTS_URL is not set: the monitor stores profiles in the artifacts "
                              "service; start it with that service's URL")
        return self.url

    async def store(self, project: str, digest: str, data: bytes, correlation_id: str | None) -> None:
        """Upload ``data`` into ``project`` (the project then holds the blob); 503 when the
        artifacts service does not take it."""
        url = f"{self._require_url()}/projects/{project}/blobs/{digest}"
        headers = {**self.headers(), "Content-Type": "application/octet-stream"}
        if correlation_id:
            headers["X-Request-Id"] = correlation_id
        try:
            resp = await self._async.put(url, content=data, headers=headers)
        except httpx.HTTPError as err:
            raise Unavailable(f"the artifacts service did not answer ({err!r}); the profile was not registered, "
                              "try again when it is up") from None
        if resp.status_code not in (200, 201):
            raise Unavailable(f"the artifacts service refused the profile ({resp.status_code}: {_message(resp)}); "
                              "it was not registered")
        self._remember(digest, data)

    def read(self, digest: str) -> bytes:
        """The profile's bytes, checked against ``digest``: from the cache, an old local file,
        else the artifacts service."""
        with self._lock:
            data = self._cache.get(digest)
            if data is not None:
                self._cache.move_to_end(digest)
                return data
        data = self._read_legacy(digest)
        if data is None:
            data = self._fetch(digest)
        if _blake3_hex(data) != digest:
            raise Unavailable(f"the stored profile {digest} does not match its digest (damaged); register it again")
        self._remember(digest, data)
        return data

    def _read_legacy(self, digest: str) -> bytes | None:
        try:
            return (self.legacy_root / f"{digest}.json").read_bytes()
        except FileNotFoundError:
            return None

    def _fetch(self, digest: str) -> bytes:
        url = f"{self._require_url()}/blobs/{digest}"
        try:
            resp = self._sync.get(url, headers=self.headers())
        except httpx.HTTPError as err:
            raise Unavailable(f"the artifacts service did not answer ({err!r}) reading profile {digest}; "
                              "try again when it is up") from None
        if resp.status_code == 404:
            raise NotFound(f"profile {digest} is registered but the artifacts service has no blob for it "
                           "(collected, or registered before profiles moved there); register it again")
        if resp.status_code != 200:
            raise Unavailable(f"the artifacts service could not serve profile {digest} "
                              f"({resp.status_code}: {_message(resp)})")
        return resp.content

    def _remember(self, digest: str, data: bytes) -> None:
        if len(data) > self.cache_bytes:
            return
        with self._lock:
            if digest in self._cache:
                return
            self._cache[digest] = data
            self._cached += len(data)
            while self._cached > self.cache_bytes:
                _, dropped = self._cache.popitem(last=False)
                self._cached -= len(dropped)

    def cached(self, digest: str) -> bool:
        with self._lock:
            return digest in self._cache


def _message(resp: httpx.Response) -> str:
    """The error message of a service's answer (``{"error": {"message": ...}}``), else its text."""
    try:
        return str(resp.json()["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return resp.text[:500]


def check_source(source: Mapping[str, Any]) -> dict[str, Any]:
    keys = set(source)
    if keys == {"dataset", "version"}:
        dataset, version = source["dataset"], source["version"]
        if (isinstance(dataset, str) and 1 <= len(dataset) <= MAX_SOURCE_NAME and isinstance(version, int)
                and not isinstance(version, bool) and version >= 1):
            return {"dataset": dataset, "version": version}
    elif keys == {"run"}:
        if isinstance(source["run"], str) and 1 <= len(source["run"]) <= MAX_SOURCE_NAME:
            return {"run": source["run"]}
    elif not keys:
        return {}
    raise InvalidInput('source must be {"dataset": name, "version": n}, {"run": id} or {}',
                       details={"field": "source"})


def _parse(profile: Mapping[str, Any]) -> tuple[bytes, str, int, int]:
    """The canonical bytes, digest, rows and column count of a profile (422 when it is not one)."""
    try:
        from cairn.monitor.profile import Profile
    except ImportError:
        raise Unavailable("this monitor has no statistics library (cairn.monitor): it cannot read profiles") from None
    try:
        raw = orjson.dumps(dict(profile))
    except orjson.JSONEncodeError as err:  # text JSON can carry but UTF-8 cannot: a lone surrogate (\ud83d)
        raise InvalidInput(f"the profile is not valid: {err}; send text as whole Unicode characters",
                           details={"field": "profile"}) from None
    try:
        parsed = Profile.from_json(raw)
    except ValueError as err:
        raise InvalidInput(f"the profile is not valid: {err}", details={"field": "profile"}) from None
    return parsed.to_json(), parsed.digest(), int(parsed.rows), len(parsed.columns)


async def register(rt: ServiceRuntime, ctx: CommandContext, blobs: ProfileBlobs, project: str,
                   profile: Mapping[str, Any], source: Mapping[str, Any]) -> dict[str, Any]:
    clean_source = check_source(source)
    data, digest, rows, columns = await asyncio.to_thread(_parse, profile)
    await blobs.store(project, digest, data, ctx.correlation_id)  # stored (and held by the project) first
    await rt.commands.execute(ctx, project=project, aggregate="profile", aggregate_id=digest,
                              decide=lambda s: domain.register_profile(s, digest=digest, rows=rows, columns=columns,
                                                                       source=clean_source))
    return {"digest": digest}


def reference_loader(store: MonitorStore, blobs: ProfileBlobs) -> Callable[[str, str], Reference | None]:
    """A deployment's reference profile as the windows need it (parsed once per digest); None
    when it has none, or without the statistics library. Called in worker threads; when the
    profile cannot be read (the artifacts service is down) it raises, and the consumer tries the
    batch again from its stored position rather than closing windows without their drift."""
    cache: dict[str, Reference] = {}

    def reference(project: str, deployment: str) -> Reference | None:
        digest = store.reference(project, deployment)["profile"]
        if digest is None:
            return None
        found = cache.get(digest)
        if found is None:
            try:
                from cairn.monitor.profile import Profile
            except ImportError:
                return None
            found = cache[digest] = Reference(digest, Profile.from_json(blobs.read(digest)))
        return found

    return reference
