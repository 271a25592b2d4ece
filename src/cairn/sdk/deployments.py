"""Deployments from Python: ``Deployments(client).create("shop", "fraud", environment="prod",
model="fraud-model", follows="production", replicas=2)``."""

from __future__ import annotations

import builtins
from typing import Any
from urllib.parse import quote

from cairn.sdk.client import Client


def _q(part: str) -> str:
    return quote(part, safe="")


def parse_model_ref(ref: str) -> tuple[str, str | None, int | None]:
    """``NAME@ALIAS`` follows an alias, ``NAME@3`` pins version 3: (name, alias, version)."""
    name, sep, target = ref.rpartition("@")
    if not sep or not name or not target:
        raise ValueError(f"model {ref!r} must be NAME@ALIAS (follow an alias) or NAME@VERSION (pin a version)")
    return (name, None, int(target)) if target.isdigit() else (name, target, None)


class Deployments:
    """The deployments service's API."""

    def __init__(self, client: Client) -> None:
        self.client = client

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        return self.client.request(method, f"/api/v1/deployments{path}", **kwargs)

    def _base(self, project: str, name: str | None = None) -> str:
        base = f"/projects/{_q(project)}/deployments"
        return f"{base}/{_q(name)}" if name else base

    def create(self, project: str, name: str, *, environment: str, model: str, follows: str | None = None,
               version: int | None = None, replicas: int = 1, sample_rate: float = 0.0,
               batching: dict[str, Any] | None = None, public: bool = False) -> dict[str, Any]:
        body = {"name": name, "environment": environment, "model": model, "follows": follows, "version": version,
                "replicas": replicas, "sample_rate": sample_rate, "batching": batching, "public": public}
        return self._call("POST", self._base(project), json=body)

    def list(self, project: str) -> dict[str, Any]:
        return self._call("GET", self._base(project))

    def get(self, project: str, name: str) -> dict[str, Any]:
        return self._call("GET", self._base(project, name))

    def replicas(self, project: str, name: str) -> builtins.list[dict[str, Any]]:
        return self._call("GET", self._base(project, name) + "/replicas")["replicas"]

    def set_version(self, project: str, name: str, version: int) -> dict[str, Any]:
        return self._call("POST", self._base(project, name) + "/version", json={"version": version})

    def rollback(self, project: str, name: str) -> dict[str, Any]:
        return self._call("POST", self._base(project, name) + "/rollback")

    def scale(self, project: str, name: str, replicas: int) -> dict[str, Any]:
        return self._call("POST", self._base(project, name) + "/scale", json={"replicas": replicas})

    def split(self, project: str, name: str, *, canary: dict[str, Any] | None = None,
              shadow: dict[str, Any] | None = None) -> dict[str, Any]:
        return self._call("PUT", self._base(project, name) + "/traffic", json={"canary": canary, "shadow": shadow})

    def delete(self, project: str, name: str) -> None:
        self._call("DELETE", self._base(project, name))

    def requests(self, project: str, name: str, *, since: str = "1h", limit: int = 100) -> dict[str, Any]:
        """Sampled requests from the inference log, newest first, with feedback labels joined."""
        return self._call("GET", self._base(project, name) + "/requests", params={"since": since, "limit": limit})

    def feedback(self, project: str, name: str, labels: dict[str, Any]) -> dict[str, Any]:
        """Ground truth for sampled requests: ``{request_id: label}``; the first label of a request counts."""
        body = {"labels": [{"request_id": rid, "label": label} for rid, label in labels.items()]}
        return self._call("POST", self._base(project, name) + "/feedback", json=body)

    def environments(self, project: str) -> builtins.list[dict[str, Any]]:
        return self._call("GET", f"/projects/{_q(project)}/environments")["environments"]

    def protect(self, project: str, environment: str, protected: bool = True) -> dict[str, Any]:
        action = "protect" if protected else "unprotect"
        return self._call("POST", f"/projects/{_q(project)}/environments/{_q(environment)}/{action}")
