"""Every MLflow endpoint (both tables: ``calls.ENDPOINTS`` and the trace API's ``ENDPOINTS_V3``)
enforces the role it declares, before its handler runs: a viewer is refused every write, an editor
every admin-only call, a non-member every call (the not-a-member answer, which never confirms the
project), and a refused call appends nothing to the event log."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import loopback
import pytest

from cairn.services.gateway.mlflow import routes  # noqa: F401 - registers every endpoint module
from cairn.services.gateway.mlflow.calls import ENDPOINTS
from cairn.services.gateway.mlflow.traces import ENDPOINTS_V3

from platform_harness import Platform, stream_last_seq

RANK = {"viewer": 1, "editor": 2, "admin": 3}
PROJECT = "roles-mlflow"


def _calls() -> list[tuple[str, str, str]]:
    """(method, URL path under the tracking URI, declared role) for every endpoint."""
    out = [(m, f"/api/2.0/mlflow/{p}", e.role) for (m, p), e in ENDPOINTS.items()]
    out += [(m, f"/api/3.0/mlflow/{p}", e.role) for (m, p), e in ENDPOINTS_V3.items()]
    return [(m, path.replace("{", "").replace("}", ""), role) for m, path, role in out]


@pytest.fixture(scope="module")
def tokens(platform: Platform) -> Iterator[dict[str, str]]:
    with httpx.Client(base_url=f"{platform.gateway}/api/v1", headers=platform.headers, timeout=30) as admin:
        admin.post("/registry/projects", json={"name": PROJECT}).raise_for_status()
        made = {}
        for user, role in (("rolev", "viewer"), ("rolee", "editor"), ("rolex", None)):
            made[user] = admin.post("/tokens", json={"user": user}).json()["token"]
            if role:
                admin.post(f"/projects/{PROJECT}/members", json={"user": user, "role": role}).raise_for_status()
        yield made


def test_the_tables_hold_every_kind_of_role() -> None:
    roles = {role for _, _, role in _calls()}
    assert roles == {"viewer", "editor", "admin"} and len(_calls()) > 90


def test_every_endpoint_refuses_callers_below_its_role(platform: Platform, tokens: dict[str, str]) -> None:
    before = stream_last_seq(platform)
    wrong = []
    for method, path, role in _calls():
        for user, rank in (("rolev", 1), ("rolee", 2), ("rolex", 0)):
            if rank >= RANK[role]:
                continue
            resp = loopback.request(method, f"{platform.gateway}/mlflow/{PROJECT}{path}", timeout=30,
                                    headers={"Authorization": f"Bearer {tokens[user]}"},
                                    json={} if method != "GET" else None)
            code = resp.json().get("error_code") if resp.headers.get("content-type", "").startswith(
                "application/json") else None
            expected = ("RESOURCE_DOES_NOT_EXIST", 404) if rank == 0 else ("PERMISSION_DENIED", 403)
            if (code, resp.status_code) != expected:
                wrong.append(f"{user} {method} {path}: {resp.status_code} {resp.text[:120]}")
    assert not wrong, "\n".join(wrong)
    assert stream_last_seq(platform) == before, "a refused call appended to the event log"
