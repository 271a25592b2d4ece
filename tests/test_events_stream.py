"""Server-sent events from the gateway: live, filtered, and resumable with Last-Event-ID."""

from __future__ import annotations

import json

import httpx
import loopback
import pytest

from platform_harness import Platform

pytestmark = pytest.mark.shared_stack  # see tests/conftest.py


def _read_events(platform: Platform, count: int, **params: str) -> tuple[list[dict], list[int]]:
    headers = dict(platform.headers)
    if "last_event_id" in params:
        headers["Last-Event-ID"] = params.pop("last_event_id")
    events, ids = [], []
    with loopback.stream("GET", f"{platform.gateway}/api/v1/events/stream", params=params, headers=headers,
                      timeout=20) as resp:
        assert resp.status_code == 200
        for line in resp.iter_lines():
            if line.startswith("id: "):
                ids.append(int(line[4:]))
            if line.startswith("data: "):
                events.append(json.loads(line[6:]))
                if len(events) == count:
                    break
    return events, ids


def test_stream_filters_and_resumes_without_gaps(platform: Platform, api: httpx.Client, project: str) -> None:
    run = api.post(f"/projects/{project}/runs", json={}).json()
    for i in range(6):
        api.put(f"/projects/{project}/runs/{run['id']}/tags/t{i}", json={"value": str(i)})

    first, ids = _read_events(platform, 3, project=project, types="run.tag_set", since="0")
    assert [e["data"]["key"] for e in first] == ["t0", "t1", "t2"]
    assert [e["sequence"] for e in first] == ids
    # a client that reconnects with the last id it saw gets the rest, each once
    rest, _ = _read_events(platform, 3, project=project, types="run.tag_set", last_event_id=str(ids[-1]))
    assert [e["data"]["key"] for e in rest] == ["t3", "t4", "t5"]

    every, _ = _read_events(platform, 2, project=project, types="run.*", since="0")
    assert [e["type"] for e in every] == ["run.created", "run.tag_set"]


def test_bad_stream_parameters_are_422(platform: Platform) -> None:
    base = f"{platform.gateway}/api/v1/events/stream"
    assert loopback.get(base, params={"project": "Bad Name"}, headers=platform.headers).status_code == 422
    assert loopback.get(base, headers={"Last-Event-ID": "abc", **platform.headers}).status_code == 422
