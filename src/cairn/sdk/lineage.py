"""Lineage queries from Python: ``Lineage(client).impact("reviews-proj", "dataset:reviews@v3")``.

Node references: ``dataset:NAME@vN``, ``dataset:NAME``, ``run:ID``, ``model:NAME@N``,
``model:NAME@ALIAS``, ``model:NAME``, ``blob:DIGEST``, ``commit:SHA``, ``job:ID`` (docs/lineage.md).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from cairn.sdk.client import Client


def _q(part: str) -> str:
    return quote(part, safe="")


class Lineage:
    """The lineage service's API."""

    def __init__(self, client: Client) -> None:
        self.client = client

    def _get(self, path: str, **params: Any) -> Any:
        return self.client.request("GET", f"/api/v1/lineage{path}",
                                   params={k: v for k, v in params.items() if v is not None})

    def upstream(self, project: str, node: str, *, depth: int | None = None,
                 as_of: str | int | None = None) -> dict[str, Any]:
        return self._get(f"/projects/{_q(project)}/upstream", node=node, depth=depth, as_of=as_of)

    def downstream(self, project: str, node: str, *, depth: int | None = None,
                   as_of: str | int | None = None) -> dict[str, Any]:
        return self._get(f"/projects/{_q(project)}/downstream", node=node, depth=depth, as_of=as_of)

    def impact(self, project: str, node: str, *, depth: int | None = None,
               as_of: str | int | None = None) -> dict[str, Any]:
        return self._get(f"/projects/{_q(project)}/impact", node=node, depth=depth, as_of=as_of)

    def graph(self, project: str, node: str, *, direction: str = "upstream", format: str = "json",
              depth: int | None = None, as_of: str | int | None = None) -> Any:
        """JSON (a dict) or, with ``format="dot"`` / ``"mermaid"``, the text."""
        params = {"node": node, "direction": direction, "format": format, "depth": depth, "as_of": as_of}
        if format == "json":
            return self._get(f"/projects/{_q(project)}/graph", **params)
        from cairn.sdk.client import reaching

        with reaching(self.client.url):
            resp = self.client._http.get(f"/api/v1/lineage/projects/{_q(project)}/graph",
                                         params={k: v for k, v in params.items() if v is not None})
        if resp.status_code >= 400:
            self.client._answer(resp)
        return resp.text

    def shared(self, node: str, *, direction: str = "downstream", depth: int | None = None) -> dict[str, Any]:
        """Lineage of a node across your projects: ``blob:<digest>``, ``dataset:<project>/<name>@v3``."""
        return self._get("/node", node=node, direction=direction, depth=depth)

    def openlineage(self, project: str, run_id: str | None = None) -> list[dict[str, Any]]:
        """OpenLineage run events for one run, or for the project's runs."""
        path = f"/projects/{_q(project)}/runs/{_q(run_id)}/openlineage" if run_id else \
            f"/projects/{_q(project)}/openlineage"
        return self._get(path)["events"]

    def sql(self, sql: str, *, max_rows: int = 1000, timeout_s: float = 5.0) -> dict[str, Any]:
        """Read-only SQL over the lineage views (site admins only)."""
        return self.client.request("POST", "/api/v1/lineage/admin/sql",
                                   json={"sql": sql, "max_rows": max_rows, "timeout_s": timeout_s})
