"""Run search: experiments, filters on params/tags/attributes, sorting and pagination."""

from __future__ import annotations

import httpx
import pytest

pytestmark = pytest.mark.shared_stack  # see tests/conftest.py


@pytest.fixture()
def runs(api: httpx.Client, project: str) -> dict[str, dict]:
    exp = api.post(f"/projects/{project}/experiments", json={"name": "other"}).json()
    made = {}
    for i, (lr, team, exp_name) in enumerate([("0.1", "cv", "default"), ("0.01", "cv", "default"),
                                              ("0.001", "nlp", "other"), ("1", "nlp", "default")]):
        run = api.post(f"/projects/{project}/runs", json={
            "name": f"run-{i}", "experiment": exp_name, "params": {"lr": lr, "idx": i}, "tags": {"team": team}}).json()
        made[run["name"]] = run
    api.post(f"/projects/{project}/runs/{made['run-1']['id']}/finish", json={"status": "finished"})
    made["_exp"] = exp
    return made


def _names(resp: httpx.Response) -> list[str]:
    assert resp.status_code == 200, resp.text
    return [r["name"] for r in resp.json()["runs"]]


def test_filters(api: httpx.Client, project: str, runs: dict) -> None:
    search = f"/projects/{project}/runs/search"
    assert sorted(_names(api.post(search, json={"filter": "tags.team = 'cv'"}))) == ["run-0", "run-1"]
    assert _names(api.post(search, json={"filter": "params.lr = '0.01'"})) == ["run-1"]
    assert sorted(_names(api.post(search, json={"filter": "params.lr < 0.05"}))) == ["run-1", "run-2"]
    assert _names(api.post(search, json={"filter": "status = 'finished'"})) == ["run-1"]
    assert sorted(_names(api.post(search, json={"filter": "tags.team = 'nlp' and params.idx >= 3"}))) == ["run-3"]
    assert sorted(_names(api.post(search, json={"filter": "name IN ('run-0', 'run-3')"}))) == ["run-0", "run-3"]
    assert sorted(_names(api.post(search, json={"filter": "name LIKE 'run-%' and tags.team != 'cv'"}))) == ["run-2", "run-3"]
    assert _names(api.post(search, json={"experiment_ids": [runs["_exp"]["id"]]})) == ["run-2"]
    assert _names(api.get(f"/projects/{project}/runs", params={"filter": "params.lr = '1'"})) == ["run-3"]


def test_order_and_pages(api: httpx.Client, project: str, runs: dict) -> None:
    search = f"/projects/{project}/runs/search"
    assert _names(api.post(search, json={"order_by": ["params.lr DESC"]})) == ["run-3", "run-0", "run-1", "run-2"]
    assert _names(api.post(search, json={"order_by": ["name ASC"]})) == ["run-0", "run-1", "run-2", "run-3"]
    seen, token = [], None
    while True:
        page = api.post(search, json={"order_by": ["name DESC"], "page_size": 3, "page_token": token}).json()
        seen += [r["name"] for r in page["runs"]]
        token = page["next_page_token"]
        if token is None:
            break
    assert seen == ["run-3", "run-2", "run-1", "run-0"]


@pytest.mark.parametrize("bad", ["params.lr ~ 1", "nonsense = 'x'", "params.lr = ", "name = 'a' or name = 'b'",
                                 "metrics.loss LIKE 'x'", "name IN ('a'"])
def test_bad_filters_are_422(api: httpx.Client, project: str, bad: str) -> None:
    resp = api.post(f"/projects/{project}/runs/search", json={"filter": bad})
    assert resp.status_code == 422, resp.text
    assert resp.json()["error"]["details"]["field"] == "filter"
    assert "at position" in resp.json()["error"]["message"]


def test_a_dangling_and_is_refused_with_its_position(api: httpx.Client, project: str) -> None:
    resp = api.post(f"/projects/{project}/runs/search", json={"filter": "params.lr = 0.01 and"})
    assert resp.status_code == 422, resp.text
    assert resp.json()["error"]["message"] == "expected a condition after 'and' at position 20"


def test_bad_page_token_and_order_are_422(api: httpx.Client, project: str) -> None:
    search = f"/projects/{project}/runs/search"
    assert api.post(search, json={"page_token": "garbage"}).status_code == 422
    assert api.post(search, json={"order_by": ["name sideways"]}).status_code == 422
    assert api.post(search, json={"page_size": 5000}).status_code == 422
