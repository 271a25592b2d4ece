"""A scripted scenario through the real platform (SDK -> gateway -> services -> NATS -> lineage):
datasets v1..v3, runs that use them, a derived dataset produced by a run, models registered from
runs, an alias moved; upstream, impact and as-of answers asserted exactly; rebuild is identical."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner
from lineage_support import refs, wait_for_lineage

import cairn
from cairn.cli.main import cli
from cairn.sdk.lineage import Lineage

from platform_harness import Platform

P = "lin-shop"


def write(root: Path, name: str, files: dict[str, bytes]) -> Path:
    folder = root / name
    folder.mkdir()
    for file, data in files.items():
        (folder / file).write_bytes(data)
    return folder


@pytest.fixture(scope="module")
def shop(platform: Platform, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Build the scenario once; returns ids, digests and the sequence just before the alias move."""
    root = tmp_path_factory.mktemp("shop")
    client = cairn.Client(platform.gateway, token=platform.token)
    client.ensure_project(P)
    art = client.artifacts
    manifests = {}
    for v in (1, 2, 3):
        pushed = art.push_dataset(P, "reviews", write(root, f"reviews{v}", {"r.csv": f"rows v{v}\n".encode()}))
        manifests[v] = pushed.manifest.digest

    def run(name: str) -> Any:
        # Started in a folder that is not a git work tree, so no code snapshot is recorded and the
        # expected sets do not depend on where pytest runs (a clone of the repo would add commit nodes).
        here = os.getcwd()
        os.chdir(root)
        try:
            return cairn.start_run(P, "shop", name=name, client=client, system_metrics=False)
        finally:
            os.chdir(here)

    r1 = run("train-v1")
    r1.use_dataset("reviews@v1")
    m1 = r1.log_artifact(write(root, "m1", {"model.bin": b"weights one"}) / "model.bin")["digest"]
    r1.finish()
    r3 = run("prep")
    r3.use_dataset("reviews@v3")
    clean_dir = write(root, "clean", {"c.csv": b"clean rows\n"})
    clean_digest = r3.log_artifact(clean_dir, name="clean")["digest"]
    r3.finish()
    clean = art.push_dataset(P, "clean", clean_dir)  # the derived dataset: same content as r3's output
    r4 = run("train-v2")
    r4.use_dataset("clean@v1")
    m4 = r4.log_artifact(write(root, "m4", {"model.bin": b"weights two"}) / "model.bin")["digest"]
    r4.finish("failed", "diverged late")
    client.create_model(P, "churn")
    client.create_model_version(P, "churn", run_id=r1.id, artifact_digest=m1)
    client.create_model_version(P, "churn", run_id=r4.id, artifact_digest=m4)
    client.set_alias(P, "churn", "production", 1)
    before_move = wait_for_lineage(platform)
    client.set_alias(P, "churn", "production", 2)
    wait_for_lineage(platform)
    client.close()
    return {"r1": r1.id, "r3": r3.id, "r4": r4.id, "m1": m1, "m4": m4, "manifests": manifests,
            "clean": clean_digest, "clean_manifest": clean.manifest.digest, "before_move": before_move}


@pytest.fixture(scope="module")
def lineage(platform: Platform) -> Any:
    with cairn.Client(platform.gateway, token=platform.token) as client:
        yield Lineage(client)


def environments(lineage: Lineage, *run_ids: str) -> set[str]:
    """The Python environments the SDK recorded for these runs (run.environment_recorded)."""
    return {n["ref"] for r in run_ids for n in lineage.upstream(P, f"run:{r}", depth=1)["nodes"]
            if n["kind"] == "environment"}


def test_runs_link_to_the_environment_they_recorded(shop: dict[str, Any], lineage: Lineage) -> None:
    # One process ran every run of the scenario: one environment node, shared by all of them.
    assert len(environments(lineage, shop["r1"], shop["r3"], shop["r4"])) == 1
    env = environments(lineage, shop["r1"]).pop()
    assert {f"run:{shop[r]}" for r in ("r1", "r3", "r4")} <= refs(lineage.shared(env))


def test_a_derived_dataset_is_linked_to_the_run_that_produced_it(shop: dict[str, Any], lineage: Lineage) -> None:
    assert shop["clean"] == shop["clean_manifest"]
    answer = lineage.upstream(P, "dataset:clean@v1")
    assert refs(answer) == {f"blob:{shop['clean']}", f"run:{shop['r3']}", "dataset:reviews@v3",
                            f"blob:{shop['manifests'][3]}"} | environments(lineage, shop["r3"])
    assert {n["ref"]: n["depth"] for n in answer["nodes"]}[f"run:{shop['r3']}"] == 2


def test_upstream_of_a_model_version_is_everything_it_came_from(shop: dict[str, Any], lineage: Lineage) -> None:
    expected = {f"run:{shop['r4']}", f"blob:{shop['m4']}", "dataset:clean@v1", f"blob:{shop['clean']}",
                f"run:{shop['r3']}", "dataset:reviews@v3", f"blob:{shop['manifests'][3]}"}
    expected |= environments(lineage, shop["r3"], shop["r4"])
    assert refs(lineage.upstream(P, "model:churn@2")) == expected
    assert refs(lineage.upstream(P, "model:churn@v2", depth=1)) == {f"run:{shop['r4']}", f"blob:{shop['m4']}"}
    # The alias reaches the same history through the version it points at now.
    assert refs(lineage.upstream(P, "model:churn@production")) == expected | {"model:churn@v2"}


def test_impact_of_a_dataset_version_lists_what_depends_on_it(shop: dict[str, Any], lineage: Lineage) -> None:
    assert refs(lineage.impact(P, "dataset:reviews@v3")) == {
        f"run:{shop['r3']}", "dataset:clean@v1", f"run:{shop['r4']}", "model:churn@v2", "model:churn@production"}
    assert refs(lineage.impact(P, "dataset:reviews@v1")) == {f"run:{shop['r1']}", "model:churn@v1"}
    assert refs(lineage.impact(P, "dataset:reviews@v2")) == set()
    downstream = refs(lineage.downstream(P, "dataset:reviews@v1"))
    assert downstream == {f"run:{shop['r1']}", f"blob:{shop['m1']}", "model:churn@v1"}
    # A dataset (every version) as the starting point.
    assert refs(lineage.impact(P, "dataset:reviews")) == refs(lineage.impact(P, "dataset:reviews@v3")) | {
        f"run:{shop['r1']}", "model:churn@v1"}


def test_as_of_before_and_after_the_alias_move(shop: dict[str, Any], lineage: Lineage) -> None:
    before = shop["before_move"]
    assert refs(lineage.impact(P, "dataset:reviews@v1", as_of=before)) == {
        f"run:{shop['r1']}", "model:churn@v1", "model:churn@production"}
    assert refs(lineage.impact(P, "dataset:reviews@v3", as_of=before)) == {
        f"run:{shop['r3']}", "dataset:clean@v1", f"run:{shop['r4']}", "model:churn@v2"}
    assert "model:churn@v1" in refs(lineage.upstream(P, "model:churn@production", as_of=before))
    set_at = lineage.upstream(P, "model:churn@production")["node"]["time"]  # when the alias was first set
    at_time = lineage.upstream(P, "model:churn@production", as_of=set_at, depth=1)
    assert refs(at_time) == {"model:churn@v1"} and at_time["as_of"] == {"time": set_at}
    assert "model:churn@v1" not in refs(lineage.upstream(P, "model:churn@production"))
    with pytest.raises(cairn.ApiError) as err:  # the derived dataset did not exist at sequence 1
        lineage.upstream(P, "dataset:clean@v1", as_of=1)
    assert err.value.status == 404


def test_graph_as_json_dot_and_mermaid(shop: dict[str, Any], lineage: Lineage) -> None:
    graph = lineage.graph(P, "model:churn@2")
    ids = {n["id"] for n in graph["nodes"]}
    assert f"{P}/model:churn@v2" in ids and f"{P}/run:{shop['r4']}" in ids
    edges = {(e["src"], e["type"], e["dst"]) for e in graph["edges"]}
    assert (f"{P}/run:{shop['r4']}", "produced", f"{P}/model:churn@v2") in edges
    assert (f"{P}/dataset:reviews@v3", "used", f"{P}/run:{shop['r3']}") in edges
    dot = lineage.graph(P, "model:churn@2", format="dot")
    assert dot.startswith("digraph lineage {") and '[label="produced"]' in dot
    mermaid = lineage.graph(P, "model:churn@2", format="mermaid")
    assert mermaid.startswith("flowchart LR") and "-->|used|" in mermaid


def test_openlineage_export_of_a_run(shop: dict[str, Any], lineage: Lineage) -> None:
    events = lineage.openlineage(P, shop["r4"])
    assert [e["eventType"] for e in events] == ["START", "FAIL"]
    for event in events:
        assert {"eventType", "eventTime", "run", "job", "inputs", "outputs", "producer", "schemaURL"} <= set(event)
        assert event["job"] == {"namespace": f"cairn://{P}", "name": "train-v2", "facets": {}}
        assert event["inputs"] == [{"namespace": f"cairn://{P}", "name": "dataset:clean", "facets": {
            "version": {"_producer": event["producer"], "_schemaURL": event["inputs"][0]["facets"]["version"][
                "_schemaURL"], "datasetVersion": "1"}}}]
        assert {o["name"] for o in event["outputs"]} == {f"blob:{shop['m4']} (model.bin)", "model:churn"}
    assert len({e["run"]["runId"] for e in events}) == 1
    assert len(lineage.openlineage(P)) == 2 * 3  # three finished runs, START + end each


def test_unknown_references_and_bad_input_are_clear(shop: dict[str, Any], lineage: Lineage) -> None:
    for ref, status in (("dataset:reviews@v9", 404), ("model:nope@1", 404), ("dataset:reviews@prod", 422),
                        ("bogus:thing", 422), ("run:x@1", 422)):
        with pytest.raises(cairn.ApiError) as err:
            lineage.upstream(P, ref)
        assert err.value.status == status, ref
        assert err.value.message


def test_rebuild_gives_an_identical_database(shop: dict[str, Any], platform: Platform) -> None:
    admin = httpx.Client(base_url=f"{platform.gateway}/api/v1/lineage", headers=platform.headers, timeout=120)
    wait_for_lineage(platform)
    before = admin.get("/admin/content-hash").json()
    rebuilt = admin.post("/admin/rebuild").json()
    assert rebuilt["content_hash"] == before["content_hash"]
    assert rebuilt["applied_seq"] == before["applied_seq"]
    stats = admin.get("/stats").json()
    assert stats["nodes"]["run"] >= 3 and stats["edges"]["promoted_to"] == 2
    assert any(not t["mapped"] and t["type"] == "project.created" for t in stats["event_types"])


def test_cli_lineage_commands(shop: dict[str, Any], platform: Platform) -> None:
    runner = CliRunner(env={"CAIRN_TOKEN": platform.token})

    def cli_json(*args: str) -> Any:
        result = runner.invoke(cli, ["--url", platform.gateway, "--json", "lineage", *args], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return json.loads(result.output)

    assert refs(cli_json("impact", "dataset:reviews@v1", "-p", P)) == {f"run:{shop['r1']}", "model:churn@v1"}
    assert refs(cli_json("upstream", "model:churn@v2", "-p", P, "--depth", "1")) == {
        f"run:{shop['r4']}", f"blob:{shop['m4']}"}
    assert cli_json("sql", "SELECT count(*) AS n FROM lineage_nodes WHERE kind = 'alias'")["rows"] == [[1]]
    text = runner.invoke(cli, ["--url", platform.gateway, "lineage", "graph", "model:churn@2", "-p", P,
                               "--format", "dot"])
    assert text.exit_code == 0 and text.output.startswith("digraph lineage {")
    bad = runner.invoke(cli, ["--url", platform.gateway, "lineage", "upstream", "dataset:nope@v1", "-p", P])
    assert bad.exit_code == 1 and "no lineage node" in bad.output
    lines = runner.invoke(cli, ["--url", platform.gateway, "lineage", "openlineage", "-p", P, "--run", shop["r1"]])
    assert [json.loads(line)["eventType"] for line in lines.output.splitlines()] == ["START", "COMPLETE"]
    for command in ([], ["upstream"], ["downstream"], ["impact"], ["graph"], ["sql"], ["openlineage"]):
        result = runner.invoke(cli, ["lineage", *command, "--help"])
        assert result.exit_code == 0 and "Example" in result.output, command


def test_sigkilled_lineage_catches_up_on_restart_and_matches_a_rebuild(shop: dict[str, Any], platform: Platform,
                                                                     lineage: Lineage) -> None:
    platform.kill("lineage")
    with cairn.Client(platform.gateway, token=platform.token) as client:
        late = cairn.start_run(P, "shop", name="while-down", client=client, system_metrics=False)
        late.use_dataset("reviews@v2")
        late.finish()
    platform.start_service("lineage")
    platform.wait_healthy()
    wait_for_lineage(platform)
    assert refs(lineage.impact(P, "dataset:reviews@v2")) == {f"run:{late.id}"}
    admin = httpx.Client(base_url=f"{platform.gateway}/api/v1/lineage", headers=platform.headers, timeout=120)
    before = admin.get("/admin/content-hash").json()["content_hash"]
    assert admin.post("/admin/rebuild").json()["content_hash"] == before
