"""One MLflow API call: who, which project, the arguments, and the endpoint table it is routed by."""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fastapi import Request

from cairn.services.gateway.auth import Principal
from cairn.services.gateway.mlflow.backend import Services
from cairn.services.gateway.mlflow.errors import invalid
from cairn.services.gateway.mlflow.identifiers import PROJECT

ARTIFACT_SCHEME = "mlflow-artifacts:"
HIDDEN_TAG_PREFIX = "mlflow.cairn."  # bookkeeping tags (logged models, dataset inputs): not shown as tags


def default_project() -> str:
    """The project that the unscoped ``/api/2.0/mlflow/`` routes use (CAIRN_MLFLOW_DEFAULT_PROJECT)."""
    return os.environ.get("CAIRN_MLFLOW_DEFAULT_PROJECT", "default")


@dataclass
class Call:
    request: Request
    principal: Principal
    project: str
    services: Services
    args: dict[str, Any]
    multi: dict[str, list[str]]

    def arg(self, name: str, default: Any = None, *, required: bool = False) -> Any:
        value = self.args.get(name)
        if value is None or value == "":
            if required:
                raise invalid(f"Missing value for required parameter '{name}'. "
                              "See the API docs for more information about request parameters.")
            return default
        return value

    def int_arg(self, name: str, default: int | None = None) -> int | None:
        value = self.arg(name)
        if value is None:
            return default
        try:
            return int(value)
        except (TypeError, ValueError):
            raise invalid(f"Invalid value {value!r} for parameter '{name}': an integer is expected") from None

    def list_arg(self, name: str) -> list[Any]:
        value = self.args.get(name)
        if isinstance(value, list):
            return value
        return list(self.multi.get(name, [])) or ([value] if value not in (None, "") else [])

    def require(self, role: str) -> None:
        self.principal.require(self.project, role)

    async def registry(self, method: str, path: str, **kw: Any) -> Any:
        """``path`` below the call's project; identifiers in it are checked and escaped by the
        caller (:mod:`identifiers`)."""
        return await self.services.call("registry", method, f"{self.project_path}{path}", **kw)

    async def metrics(self, method: str, path: str, **kw: Any) -> Any:
        return await self.services.call("metrics", method, f"{self.project_path}{path}", **kw)

    @property
    def project_path(self) -> str:
        return f"/projects/{PROJECT.segment(self.project, 'project')}"

    async def artifacts(self, method: str, path: str, **kw: Any) -> Any:
        return await self.services.call("artifacts", method, path, **kw)

    def artifact_root(self, run_id: str) -> str:
        return f"{ARTIFACT_SCHEME}/{self.project}/{run_id}/artifacts"


Handler = Callable[[Call], Awaitable[dict[str, Any]]]


@dataclass(frozen=True)
class Endpoint:
    handler: Handler
    role: str  # viewer | editor | admin, in the call's project


ENDPOINTS: dict[tuple[str, str], Endpoint] = {}


def match_endpoint(table: dict[tuple[str, str], Endpoint], method: str,
                   path: str) -> tuple[Endpoint, dict[str, str]] | None:
    """The endpoint of ``table`` for ``method`` and ``path`` and the values of its ``{name}``
    segments: an exact path first, then the first template of as many segments that fits."""
    path = path.strip("/")
    found = table.get((method, path))
    if found is not None:
        return found, {}
    parts = path.split("/")
    for (m, pattern), candidate in table.items():
        template = pattern.split("/")
        if m != method or len(template) != len(parts) or "{" not in pattern:
            continue
        captured = {}
        for want, got in zip(template, parts):
            if want.startswith("{"):
                captured[want[1:-1]] = got
            elif want != got:
                break
        else:
            return candidate, captured
    return None


def endpoint(method: str, path: str, role: str = "viewer") -> Callable[[Handler], Handler]:
    """Register a handler for ``<method> /api/2.0/mlflow/<path>``."""

    def register(handler: Handler) -> Handler:
        ENDPOINTS[(method, path)] = Endpoint(handler, role)
        return handler

    return register


def millis(iso: str | None) -> int | None:
    """An ISO-8601 time (as Cairn stores it) in epoch milliseconds, as MLflow sends times."""
    if not iso:
        return None
    return int(datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() * 1000)


def key_values(items: Any, what: str) -> dict[str, str]:
    """``[{"key": k, "value": v}, ...]`` -> ``{k: v}`` with a clear error for a malformed entry."""
    out: dict[str, str] = {}
    for item in items or []:
        if not isinstance(item, dict) or "key" not in item:
            raise invalid(f"each {what} needs a 'key' and a 'value'")
        out[str(item["key"])] = "" if item.get("value") is None else str(item["value"])
    return out

