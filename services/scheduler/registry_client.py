"""The scheduler's calls to the registry (over loopback HTTP, as the caller who submitted):
create the job's run, start it when the job starts, finish it when the job ends."""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import quote

import httpx

from cairn.kernel.errors import CairnError, InvalidInput, NotFound, Unavailable
from cairn.kernel.http import ACTOR_HEADER

# job outcome -> registry run status
RUN_STATUS = {"job.succeeded": "finished", "job.failed": "failed", "job.cancelled": "killed"}


def _q(part: str) -> str:
    return quote(part, safe="")


class RegistryClient:
    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")
        self.http = httpx.AsyncClient(base_url=self.url, timeout=30.0)

    async def close(self) -> None:
        await self.http.aclose()

    async def _call(self, method: str, path: str, *, actor: str, json: Any = None,
                    key: str | None = None) -> httpx.Response:
        if not self.url:
            raise Unavailable("the scheduler has no registry URL (set CAIRN_REGISTRY_URL)")
        headers = {ACTOR_HEADER: actor}
        if key:
            headers["Idempotency-Key"] = key
        delay = 0.1
        for attempt in range(8):
            try:
                resp = await self.http.request(method, path, json=json, headers=headers)
            except httpx.TransportError:
                if attempt == 7:
                    raise Unavailable("the registry is not reachable; retry shortly") from None
            else:
                if resp.status_code not in (502, 503, 504) or attempt == 7:
                    return resp
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)
        raise AssertionError("unreachable")

    @staticmethod
    def _raise(resp: httpx.Response, what: str) -> None:
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
                         tags: dict[str, str], actor: str, key: str) -> dict[str, Any]:
        body = {"experiment": experiment, "name": name, "params": params, "tags": tags, "start": False}
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
