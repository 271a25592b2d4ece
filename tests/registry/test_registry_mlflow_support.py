"""Registry commands and search orders that the MLflow layer needs: deleting an experiment tag
(``experiment.tag_deleted``) and the ``client_start_time`` order (a client's start time, kept in
a tag, else when Cairn started the run; ties by run id)."""

from __future__ import annotations

import httpx
import pytest

from platform_harness import Platform, stream_last_seq

pytestmark = pytest.mark.shared_stack  # see tests/conftest.py


def _ok(resp: httpx.Response, status: int = 200) -> dict:
    assert resp.status_code == status, resp.text
    return resp.json()


def test_experiment_tag_is_deleted_and_a_missing_one_is_404(platform: Platform, api: httpx.Client,
                                                            project: str) -> None:
    exp = _ok(api.post(f"/projects/{project}/experiments", json={"name": "tagged"}), 201)
    path = f"/projects/{project}/experiments/{exp['id']}/tags"
    _ok(api.put(f"{path}/team", json={"value": "cv"}))
    _ok(api.put(f"{path}/keep", json={"value": "me"}))
    assert _ok(api.delete(f"{path}/team"))["tags"] == {"keep": "me"}
    before = stream_last_seq(platform)
    resp = api.delete(f"{path}/team")
    assert resp.status_code == 404 and "team" in resp.json()["error"]["message"]
    assert stream_last_seq(platform) == before
    assert _ok(api.get(f"/projects/{project}/experiments/{exp['id']}"))["tags"] == {"keep": "me"}


def test_client_start_time_orders_kept_times_then_run_id(api: httpx.Client, project: str) -> None:
    def run(tags: dict[str, str]) -> str:
        return _ok(api.post(f"/projects/{project}/runs", json={"tags": tags}), 201)["id"]

    sdk_made = run({})  # no client time: Cairn's start time (now, in ms) is far above 1 and 2
    ties = sorted(run({"mlflow.cairn.start_time": "1"}) for _ in range(3))
    later = run({"mlflow.cairn.start_time": "2"})
    found = _ok(api.post(f"/projects/{project}/runs/search",
                         json={"order_by": ["attributes.client_start_time DESC"]}))["runs"]
    assert [r["id"] for r in found] == [sdk_made, later, *ties]
