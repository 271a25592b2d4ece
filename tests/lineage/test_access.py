"""Lineage is scoped to the caller's projects, even through blobs shared by content; raw SQL is
for site admins only, read-only, and bounded in time and rows."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import loopback
import pytest
from lineage_support import refs, wait_for_lineage

import cairn
from cairn.sdk.lineage import Lineage

from platform_harness import Platform

pytestmark = pytest.mark.shared_stack  # see tests/conftest.py


@pytest.fixture(scope="module")
def two_projects(platform: Platform, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Projects lin-a and lin-b each log the same file; lin-b registers a model from it.
    Vic is a viewer of lin-a only."""
    root = tmp_path_factory.mktemp("shared")
    shared = root / "weights.bin"
    shared.write_bytes(b"the same bytes in both projects")
    admin = httpx.Client(base_url=f"{platform.gateway}/api/v1", headers=platform.headers, timeout=30)
    out: dict[str, Any] = {}
    with cairn.Client(platform.gateway, token=platform.token) as client:
        for project in ("lin-a", "lin-b"):
            client.ensure_project(project)
            run = cairn.start_run(project, "x", name=f"run-{project}", client=client, system_metrics=False)
            out[f"digest-{project}"] = run.log_artifact(shared)["digest"]
            run.finish()
            out[project] = run.id
        client.create_model("lin-b", "secret-model")
        client.create_model_version("lin-b", "secret-model", run_id=out["lin-b"],
                                    artifact_digest=out["digest-lin-b"])
    token = admin.post("/tokens", json={"user": "vic"}).json()["token"]
    admin.post("/projects/lin-a/members", json={"user": "vic", "role": "viewer"}).raise_for_status()
    out["token"] = token
    wait_for_lineage(platform)
    return out


@pytest.fixture()
def vic(platform: Platform, two_projects: dict[str, Any]) -> Any:
    with cairn.Client(platform.gateway, token=two_projects["token"]) as client:
        yield Lineage(client)


def test_a_viewer_sees_no_node_of_another_project_through_a_shared_blob(
        two_projects: dict[str, Any], vic: Lineage, platform: Platform) -> None:
    digest = two_projects["digest-lin-a"]
    assert digest == two_projects["digest-lin-b"]
    assert refs(vic.downstream("lin-a", f"run:{two_projects['lin-a']}")) == {f"blob:{digest}"}
    shared = vic.shared(f"blob:{digest}", direction="upstream", depth=1)
    assert refs(shared) == {f"run:{two_projects['lin-a']}"}
    assert refs(vic.shared(f"blob:{digest}", direction="downstream")) == set()
    # Both runs recorded the same Python environment: a shared node, seen only through lin-a.
    env = next(n["ref"] for n in vic.upstream("lin-a", f"run:{two_projects['lin-a']}", depth=1)["nodes"]
               if n["kind"] == "environment")
    assert refs(vic.shared(env, depth=1)) == {f"run:{two_projects['lin-a']}"}
    # The site admin sees the blob lead into both projects.
    with cairn.Client(platform.gateway, token=platform.token) as client:
        every = Lineage(client).shared(f"blob:{digest}", direction="downstream")
    assert "model:secret-model@v1" in refs(every)
    with cairn.Client(platform.gateway, token=platform.token) as client:
        upstream = refs(Lineage(client).shared(f"blob:{digest}", direction="upstream", depth=1))
    assert upstream == {f"run:{two_projects['lin-a']}", f"run:{two_projects['lin-b']}"}


def test_another_projects_nodes_are_not_found(two_projects: dict[str, Any], vic: Lineage) -> None:
    for call in (lambda: vic.upstream("lin-b", f"run:{two_projects['lin-b']}"),
                 lambda: vic.upstream("lin-a", f"run:lin-b/{two_projects['lin-b']}"),
                 lambda: vic.upstream("lin-a", f"run:{two_projects['lin-b']}"),
                 lambda: vic.shared(f"run:lin-b/{two_projects['lin-b']}"),
                 lambda: vic.openlineage("lin-b")):
        with pytest.raises(cairn.ApiError) as err:
            call()
        assert err.value.status == 404


def test_only_site_admins_may_run_sql(two_projects: dict[str, Any], vic: Lineage, platform: Platform) -> None:
    with pytest.raises(cairn.ApiError) as err:
        vic.sql("SELECT count(*) FROM lineage_nodes")
    assert err.value.status == 403
    for path in ("/stats",):
        resp = loopback.get(f"{platform.gateway}/api/v1/lineage{path}", timeout=10,
                         headers={"Authorization": f"Bearer {two_projects['token']}"})
        assert resp.status_code == 403


@pytest.fixture()
def admin_lineage(platform: Platform, two_projects: dict[str, Any]) -> Any:
    with cairn.Client(platform.gateway, token=platform.token) as client:
        yield Lineage(client)


def test_sql_over_the_documented_views(admin_lineage: Lineage, two_projects: dict[str, Any]) -> None:
    answer = admin_lineage.sql("SELECT kind, count(*) AS n FROM lineage_nodes WHERE project = 'lin-b' "
                               "GROUP BY kind ORDER BY kind")
    assert answer["columns"] == ["kind", "n"]
    assert answer["rows"] == [["model", 1], ["model_version", 1], ["run", 1]]
    edges = admin_lineage.sql("SELECT src, type, dst FROM lineage_edges WHERE project = 'lin-b' AND type = 'produced' "
                              "ORDER BY dst")
    assert [r[1] for r in edges["rows"]] == ["produced", "produced"]


def test_sql_row_cap_and_time_limit(admin_lineage: Lineage) -> None:
    capped = admin_lineage.sql("SELECT * FROM range(100000)", max_rows=10)
    assert capped["row_count"] == 10 and capped["truncated"] is True and len(capped["rows"]) == 10
    with pytest.raises(cairn.ApiError) as err:
        admin_lineage.sql("SELECT sum(a.range * b.range) FROM range(1000000000) a, range(1000000000) b",
                          timeout_s=0.5)
    assert err.value.status == 400 and err.value.code == "query_timeout"
    # The service is still fine afterwards.
    assert admin_lineage.sql("SELECT 42 AS answer")["rows"] == [[42]]


@pytest.mark.parametrize("sql", ["DELETE FROM nodes", "CREATE TABLE x(a INT)", "SELECT 1; DROP TABLE edges",
                                 "COPY nodes TO '/tmp/nodes.csv'", "SELECT * FROM read_csv('/etc/passwd')",
                                 "ATTACH '/tmp/other.duckdb' AS other", "SET threads = 64", "SELEC nothing"])
def test_sql_refuses_anything_but_a_query(admin_lineage: Lineage, sql: str, tmp_path: Path) -> None:
    before = admin_lineage.sql("SELECT count(*) FROM nodes")["rows"]
    with pytest.raises(cairn.ApiError) as err:
        admin_lineage.sql(sql)
    assert err.value.status == 422 and err.value.message
    assert admin_lineage.sql("SELECT count(*) FROM nodes")["rows"] == before
