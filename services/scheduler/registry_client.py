"""The scheduler's calls to the registry (over loopback HTTP, as the caller who submitted):
create the job's run, start it when the job starts, finish it when the job ends."""

from __future__ import annotations

import asyncio
import json as json_lib
from typing import Any
from urllib.parse import quote

import aiohttp

from cairn.kernel.errors import CairnError, InvalidInput, NotFound, Unavailable
from cairn.kernel.http import ACTOR_HEADER

# job outcome -> registry run status
RUN_STATUS = {"job.succeeded": "finished", "job.failed": "failed", "job.cancelled": "killed"}


def _q(part: str) -> str:
    return quote(part, safe="")


class Answer:
    """A registry answer, read whole (they are small)."""

    def __init__(self, status_code: int, body: bytes) -> None:
        self.status_code = status_code
        self.body = body

    def json(self) -> Any:
        return json_lib.loads(self.body)

    @property
    def text(self) -> str:
        return self.body.decode(errors="replace")


class RegistryClient:
    """aiohttp rather than httpx: httpx's pool costs milliseconds of CPU per request under
    concurrency (see benchmarks/README.md, foundation)."""

    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")
        self._session: aiohttp.ClientSession | None = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=256, keepalive_timeout=30),
                timeout=aiohttp.ClientTimeout(total=30.0))
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def _call(self, method: str, path: str, *, actor: str, json: Any = None,
                    key: str | None = None) -> Answer:
        if not self.url:
            raise Unavailable("the scheduler has no registry URL (set CAIRN_REGISTRY_URL)")
        headers = {ACTOR_HEADER: actor}
        if key:
            headers["Idempotency-Key"] = key
        delay = 0.1
        for attempt in range(8):
            try:
                async with self.session.request(method, self.url + path, json=json, headers=headers) as raw:
                    resp = Answer(raw.status, await raw.read())
            except (aiohttp.ClientConnectionError, asyncio.TimeoutError):
                if attempt == 7:
                    raise Unavailable("the registry is not reachable; retry shortly") from None
            else:
                if resp.status_code not in (502, 503, 504) or attempt == 7:
                    return resp
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)
        raise AssertionError("unreachable")

    @staticmethod
    def _raise(resp: Answer, what: str) -> None:
        try:
            err = resp.json()["error"]
            message, code = err["message"], err["code"]
        except (ValueError, KeyError, TypeError):
            message, code = resp.text[:300], "error"
        if resp.status_code == 404:
            raise NotFound(message)
        if resp.status_code == 422:
            raise InvalidInput(f"{what}: {message}")
        error = CairnError(f"{what}: {message}")
        error.status, error.code = resp.status_code, code
        raise error

    async def create_run(self, project: str, *, experiment: str, name: str, params: dict[str, Any],
                         tags: dict[str, str], record: dict[str, Any] | None = None, actor: str,
                         key: str) -> dict[str, Any]:
        """Create the job's run (scheduled); ``record`` (code, command, seeds) is appended with it
        in one atomic batch: its reproducibility record, to which the job's own
        ``cairn.start_run`` then adds only the environment it ran in."""
        body = {"experiment": experiment, "name": name, "params": params, "tags": tags, "start": False}
        if record is not None:
            body["record"] = record
        path = f"/projects/{_q(project)}/runs"
        resp = await self._call("POST", path, actor=actor, json=body, key=key)
        if resp.status_code == 404 and experiment != "default":
            created = await self._call("POST", f"/projects/{_q(project)}/experiments", actor=actor,
                                       json={"name": experiment, "description": ""}, key=f"{key}:experiment")
            if created.status_code not in (201, 409):
                self._raise(created, "creating the job's experiment")
            resp = await self._call("POST", path, actor=actor, json=body, key=key)
        if resp.status_code != 201:
            self._raise(resp, "creating the job's run")
        return resp.json()

    async def start_run(self, project: str, run_id: str, *, actor: str) -> None:
        resp = await self._call("POST", f"/projects/{_q(project)}/runs/{_q(run_id)}/start", actor=actor)
        if resp.status_code >= 400 and resp.status_code != 409:
            self._raise(resp, "starting the job's run")

    async def finish_run(self, project: str, run_id: str, status: str, message: str, *, actor: str) -> None:
        resp = await self._call("POST", f"/projects/{_q(project)}/runs/{_q(run_id)}/finish", actor=actor,
                                json={"status": status, "message": message[:8000]})
        if resp.status_code >= 400 and resp.status_code != 409:  # 409: it already ended
            self._raise(resp, "finishing the job's run")
