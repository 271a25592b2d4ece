"""The engine's calls to other services: small async HTTP clients over one ``httpx.AsyncClient``.

Every call carries the pipelines service's own signed identity (``runtime.signer.internal()``)
and every write an ``Idempotency-Key`` made by the engine from (run, step, attempt, what), so a
restarted engine that repeats a call gets the first answer back instead of a second job, model
version or rollback. Answers are sorted in three: a 2xx is returned, a 4xx raises
:class:`Refused` (the other service said no: the step fails with its message), anything else
(no answer, a 5xx) raises :class:`Unreachable` (the engine tries again later).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import httpx


class Refused(Exception):
    """A 4xx: the call will not succeed by repeating it. ``status`` and the service's message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}: {message}")
        self.status, self.message = status, message


class Unreachable(Exception):
    """No answer or a 5xx: worth trying again later."""


def _message(resp: httpx.Response) -> str:
    try:
        return str(resp.json()["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return resp.text[:500]


class ServiceClient:
    """Calls to one service at ``base_url`` with the caller's identity headers."""

    def __init__(self, http: httpx.AsyncClient, base_url: str, identity: Callable[[], dict[str, str]],
                 name: str) -> None:
        self.http, self.base, self.identity, self.name = http, base_url.rstrip("/"), identity, name

    async def call(self, method: str, path: str, *, key: str | None = None, body: Any = None,
                   params: Mapping[str, Any] | None = None) -> Any:
        if not self.base:
            raise Unreachable(f"the {self.name} service's address is not configured")
        headers = dict(self.identity())
        if key is not None:
            headers["Idempotency-Key"] = key
        try:
            resp = await self.http.request(method, f"{self.base}{path}", headers=headers, json=body,
                                           params=dict(params) if params else None)
        except httpx.HTTPError as err:
            raise Unreachable(f"{self.name}: {method} {path}: {type(err).__name__}: {err}") from err
        if 400 <= resp.status_code < 500:
            raise Refused(resp.status_code, _message(resp))
        if resp.status_code >= 300:
            raise Unreachable(f"{self.name}: {method} {path}: {resp.status_code} {_message(resp)}")
        return resp.json() if resp.content else None


class Scheduler(ServiceClient):
    async def submit(self, project: str, spec: Mapping[str, Any], *, key: str) -> dict[str, Any]:
        """Submit a job; the key (the pipeline's job key) makes a repeat return the first job.
        The scheduler creates the spec's experiment when the project lacks it."""
        return await self.call("POST", f"/projects/{project}/jobs", key=key, body=dict(spec))

    async def job(self, project: str, job_id: str) -> dict[str, Any]:
        return await self.call("GET", f"/projects/{project}/jobs/{job_id}")

    async def cancel(self, project: str, job_id: str) -> dict[str, Any]:
        return await self.call("POST", f"/projects/{project}/jobs/{job_id}/cancel", key=f"cancel:{job_id}")


class Registry(ServiceClient):
    async def ensure_model(self, project: str, model: str, *, key: str) -> None:
        """Create the model unless it exists (a 409 for the name is "it exists")."""
        try:
            await self.call("GET", f"/projects/{project}/models/{model}")
            return
        except Refused as err:
            if err.status != 404:
                raise
        try:
            await self.call("POST", f"/projects/{project}/models", key=key,
                            body={"name": model, "description": "registered by a pipeline"})
        except Refused as err:
            if err.status != 409:
                raise

    async def create_version(self, project: str, model: str, *, run_id: str, digest: str, description: str,
                             key: str) -> dict[str, Any]:
        return await self.call("POST", f"/projects/{project}/models/{model}/versions", key=key,
                               body={"run_id": run_id, "artifact_digest": digest, "description": description})

    async def alias(self, project: str, model: str, alias: str) -> int | None:
        """The version behind ``model@alias``, None when the alias (or the model) is not set."""
        try:
            found = await self.call("GET", f"/projects/{project}/models/{model}/aliases/{alias}")
        except Refused as err:
            if err.status == 404:
                return None
            raise
        return int(found["version"])

    async def set_alias(self, project: str, model: str, alias: str, version: int, *, key: str) -> dict[str, Any]:
        return await self.call("PUT", f"/projects/{project}/models/{model}/aliases/{alias}", key=key,
                               body={"version": version})

    async def version(self, project: str, model: str, version: int) -> dict[str, Any]:
        return await self.call("GET", f"/projects/{project}/models/{model}/versions/{version}")


class Deployments(ServiceClient):
    async def get(self, project: str, name: str) -> dict[str, Any]:
        return await self.call("GET", f"/projects/{project}/deployments/{name}")

    async def change_version(self, project: str, name: str, version: int, *, key: str) -> dict[str, Any]:
        return await self.call("POST", f"/projects/{project}/deployments/{name}/version", key=key,
                               body={"version": version})

    async def rollback(self, project: str, name: str, *, key: str) -> dict[str, Any]:
        return await self.call("POST", f"/projects/{project}/deployments/{name}/rollback", key=key)


class Metrics(ServiceClient):
    async def last_values(self, project: str, run_id: str) -> dict[str, Any]:
        """key -> last value of a run, as the metrics service counts it: every point it accepted,
        the ones not yet written to Parquet included (its tail), so this is settled as soon as
        the job's process (which flushes its points before it exits) has ended."""
        found = await self.call("GET", f"/projects/{project}/runs/{run_id}/metrics/summary")
        return {row["key"]: row["last"] for row in found["summaries"]}


class Clients:
    """The engine's clients, sharing one connection pool; ``close`` when the engine stops."""

    def __init__(self, settings: Any, identity: Callable[[], dict[str, str]],
                 http: httpx.AsyncClient | None = None) -> None:
        self.http = http or httpx.AsyncClient(timeout=30)
        self.scheduler = Scheduler(self.http, getattr(settings, "scheduler_url", ""), identity, "scheduler")
        self.registry = Registry(self.http, getattr(settings, "registry_url", ""), identity, "registry")
        self.deployments = Deployments(self.http, getattr(settings, "deployments_url", ""), identity, "deployments")
        self.metrics = Metrics(self.http, getattr(settings, "metrics_url", ""), identity, "metrics")

    async def close(self) -> None:
        await self.http.aclose()
