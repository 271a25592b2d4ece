"""Bounded input through the gateway (issue 17, items 11 and 12): params and tags too large for
one event are refused naming the limit, and names with newlines, control characters or path
characters are 422s; none of these requests appends an event."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from platform_harness import Platform, stream_last_seq

pytestmark = pytest.mark.shared_stack  # see tests/conftest.py

MAX_PAYLOAD = 8 << 20  # max_payload: 8MB in the nats-server the platform starts


@pytest.fixture(scope="module")
def gw(platform: Platform) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=f"{platform.gateway}/api/v1", headers=platform.headers, timeout=60) as client:
        yield client


def _refused(resp: httpx.Response, status: int, field: str | None = None) -> dict:
    assert resp.status_code == status, resp.text
    error = resp.json()["error"]
    if field is not None:
        fields = [p["field"] for p in error["details"].get("problems", [])] + [error["details"].get("field")]
        assert any(f is not None and f.startswith(field) for f in fields), error
    return error


def test_params_too_large_for_one_event_are_refused_naming_the_limit(platform: Platform, gw: httpx.Client,
                                                                     project: str) -> None:
    runs = f"/registry/projects/{project}/runs"
    before = stream_last_seq(platform)
    many = {f"p{i}": "v" * 5000 for i in range(2000)}  # ~10 MB, under the 16 MiB body limit
    error = _refused(gw.post(runs, json={"params": many}), 422, "params")
    assert "1000" in error["message"]
    long_value = {"lr": "v" * 8001}
    _refused(gw.post(runs, json={"params": long_value}), 422, "params.lr")
    # each part within its bounds, together over what one event (one NATS message) can hold
    wide = {"params": {f"p{i}": "v" * 8000 for i in range(1000)}, "tags": {f"t{i}": "v" * 8000 for i in range(200)}}
    error = _refused(gw.post(runs, json=wide), 413)
    assert error["code"] == "payload_too_large" and error["details"]["limit"] == MAX_PAYLOAD
    assert str(MAX_PAYLOAD) in error["message"] and "params" in error["message"]
    run = gw.post(runs, json={}).json()["id"]
    after_create = stream_last_seq(platform)
    assert after_create == before + 1
    _refused(gw.post(f"{runs}/{run}/params", json={"params": many}), 422, "params")
    assert stream_last_seq(platform) == after_create


@pytest.mark.parametrize(("name", "body"), [
    ("member 'bob\\n'", {"user": "bob\n", "role": "viewer"}),
    ("member with NUL", {"user": "bob\x00", "role": "viewer"}),
])
def test_user_names_with_a_trailing_newline_or_nul_are_422(platform: Platform, gw: httpx.Client, project: str,
                                                         name: str, body: dict) -> None:
    before = stream_last_seq(platform)
    _refused(gw.post(f"/projects/{project}/members", json=body), 422, "user")
    _refused(gw.post("/tokens", json={"user": body["user"]}), 422, "user")
    assert stream_last_seq(platform) == before, name


def test_registry_names_with_control_or_path_characters_are_422(platform: Platform, gw: httpx.Client,
                                                                project: str) -> None:
    reg = f"/registry/projects/{project}"
    before = stream_last_seq(platform)
    _refused(gw.post(f"{reg}/runs", json={"name": "run\x00x"}), 422, "name")
    _refused(gw.post(f"{reg}/runs", json={"name": "two\nlines"}), 422, "name")
    _refused(gw.post(f"{reg}/runs", json={"tags": {"k\n": "v"}}), 422, "tags")
    _refused(gw.post(f"{reg}/runs", json={"params": {"lr\n": 1}}), 422, "params")
    _refused(gw.post(f"{reg}/runs", json={"description": "nul\x00"}), 422, "description")
    _refused(gw.post(f"{reg}/experiments", json={"name": "exp\x00"}), 422, "name")
    for model in ("../x", "a/b", "a\\b", ".hidden", "m\n"):
        _refused(gw.post(f"{reg}/models", json={"name": model}), 422, "name")
    assert stream_last_seq(platform) == before
    # free text keeps its newlines; names keep spaces and non-ASCII letters
    run = gw.post(f"{reg}/runs", json={"name": "résumé run 1", "description": "line one\nline two"})
    assert run.status_code == 201, run.text
    assert run.json()["description"] == "line one\nline two"
    assert gw.post(f"{reg}/models", json={"name": "churn-v2.1"}).status_code == 201


def test_metric_keys_and_dataset_names_are_checked_to_the_end_of_the_text(platform: Platform, gw: httpx.Client,
                                                                          project: str) -> None:
    run = gw.post(f"/registry/projects/{project}/runs", json={}).json()["id"]
    batch = {"batch_id": "b1", "points": [{"key": "m\n", "value": 1.0, "step": 0}]}
    error = _refused(gw.post(f"/metrics/projects/{project}/runs/{run}/metrics", json=batch), 422)
    assert "key" in error["message"]
    summary = gw.get(f"/metrics/projects/{project}/runs/{run}/metrics/summary").json()
    assert summary["summaries"] == []
    for ref in ("../x", "a/b", "x\n"):
        _refused(gw.post(f"/artifacts/projects/{project}/runs/{run}/datasets", json={"dataset": ref}), 422,
                 "dataset")
    manifest = {"digest": "0" * 64, "entries": [], "skipped": []}
    _refused(gw.post(f"/artifacts/projects/{project}/datasets/.x/versions", json={"manifest": manifest}), 422,
             "name")


def test_free_text_outside_the_registry_refuses_nul_and_urls_refuse_control_characters(
        platform: Platform, gw: httpx.Client, project: str) -> None:
    before = stream_last_seq(platform)
    _refused(gw.post("/tokens", json={"description": "ci\x00bot"}), 422, "description")
    for url in ("http://example.com/a\nb", "http://example.com/a b", "http://exa\x00mple.com/"):
        _refused(gw.post(f"/projects/{project}/webhooks", json={"url": url, "types": ["run.*"]}), 422, "url")
    manifest = {"entries": []}
    _refused(gw.post(f"/artifacts/projects/{project}/datasets/d/versions",
                     json={"manifest": manifest, "description": "x\x00"}), 422, "description")
    assert stream_last_seq(platform) == before
