"""Registered profiles: validated by the statistics library (``cairn.monitor.profile.Profile``),
stored content-addressed under ``<data dir>/monitor/profiles/<digest>.json`` (the canonical JSON;
the digest is BLAKE3 of those bytes, so a file is checked against its name on every read), and
announced by ``profile.registered`` (once per project: the same profile again is a no-op). The
file is written (temp file, fsync, rename) before the event is appended, so an event never names
a profile that is not on disk.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import orjson

from cairn.kernel.commands import CommandContext
from cairn.kernel.errors import InvalidInput, NotFound, Unavailable
from cairn.kernel.service import ServiceRuntime
from cairn.services.monitor import domain
from cairn.services.monitor.store import MonitorStore
from cairn.services.monitor.windows import Reference

MAX_SOURCE_NAME = 128


class ProfileFiles:
    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)

    def path(self, digest: str) -> Path:
        return self.root / f"{digest}.json"

    def write(self, digest: str, data: bytes) -> None:
        path = self.path(digest)
        if path.exists():
            return
        tmp = path.with_name(f".{digest}.{os.getpid()}.tmp")
        with open(tmp, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)

    def read(self, digest: str) -> bytes:
        from cairn.core.fingerprint import blake3

        try:
            data = self.path(digest).read_bytes()
        except FileNotFoundError:
            raise NotFound(f"profile {digest} is registered but its file is missing from the monitor's "
                           "data dir; register it again") from None
        if blake3(data).hex() != digest:
            raise Unavailable(f"the stored profile {digest} does not match its digest (damaged on disk); "
                              "register it again")
        return data


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
        parsed = Profile.from_json(orjson.dumps(dict(profile)))
    except ValueError as err:
        raise InvalidInput(f"the profile is not valid: {err}", details={"field": "profile"}) from None
    return parsed.to_json(), parsed.digest(), int(parsed.rows), len(parsed.columns)


async def register(rt: ServiceRuntime, ctx: CommandContext, files: ProfileFiles, project: str,
                   profile: Mapping[str, Any], source: Mapping[str, Any]) -> dict[str, Any]:
    clean_source = check_source(source)
    data, digest, rows, columns = await asyncio.to_thread(_parse, profile)
    await asyncio.to_thread(files.write, digest, data)
    await rt.commands.execute(ctx, project=project, aggregate="profile", aggregate_id=digest,
                              decide=lambda s: domain.register_profile(s, digest=digest, rows=rows, columns=columns,
                                                                       source=clean_source))
    return {"digest": digest}


def reference_loader(store: MonitorStore, files: ProfileFiles) -> Callable[[str, str], Reference | None]:
    """A deployment's reference profile as the windows need it (parsed once per digest); None
    when it has none, or without the statistics library."""
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
            found = cache[digest] = Reference(digest, Profile.from_json(files.read(digest)))
        return found

    return reference
