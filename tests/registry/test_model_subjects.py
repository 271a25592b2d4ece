"""Model events are on the model's own subject (``cairn.evt.<project>.model.<id>``), names stay
unique per project under concurrent creates and renames (a guard on every model subject of the
project), and logs written before, with ``model.*`` on the project's subject, still work.

Own platform (not shared): it appends old-shape events straight into the log and rebuilds the
registry's read model."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable
from typing import Any

import httpx
import loopback
import pytest

from cairn.kernel.envelope import Event, subject_for
from cairn.kernel.eventlog import EventLog

from model_helpers import push_model_folder
from platform_harness import Platform, stream_last_seq


def _ok(resp: httpx.Response, status: int = 200) -> Any:
    assert resp.status_code == status, resp.text
    return resp.json()


def _until(check: Callable[[], Any], what: str, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.05)


def _read_subject(platform: Platform, pattern: str, count: int) -> list[Event]:
    """What a subscriber to ``pattern`` receives: the first ``count`` events on it."""
    async def read() -> list[Event]:
        log = await EventLog.open(platform.nats_url, name="test-model-subscriber")
        try:
            sub = await log.js.subscribe(pattern, ordered_consumer=True, stream=log.stream)
            out = []
            while len(out) < count:
                msg = await sub.next_msg(timeout=10)
                out.append(Event.from_message(msg.data, msg.metadata.sequence.stream, msg.headers))
            return out
        finally:
            await log.close()

    return asyncio.run(read())


def _snapshot(platform: Platform, subject: str) -> tuple[int, dict[str, Any]] | None:
    """The registry's snapshot of an aggregate (its position and state), read from its database."""
    import json

    conn = sqlite3.connect(platform.data_dir / "registry" / "registry.sqlite3")
    try:
        row = conn.execute("SELECT last_seq, state FROM aggregates WHERE subject=?", (subject,)).fetchone()
    finally:
        conn.close()
    return None if row is None else (int(row[0]), json.loads(row[1]))


def _last_on(platform: Platform, subject: str) -> int:
    async def last() -> int:
        log = await EventLog.open(platform.nats_url, name="test-model-last")
        try:
            return await log.last_subject_sequence(subject)
        finally:
            await log.close()

    return asyncio.run(last())


def test_a_subscriber_to_a_projects_models_sees_every_model_event(platform: Platform, api: httpx.Client,
                                                                   project: str) -> None:
    model = _ok(api.post(f"/projects/{project}/models", json={"name": "churn"}), 201)
    base = f"/projects/{project}/models"
    _ok(api.patch(f"{base}/churn", json={"description": "weekly"}))
    _ok(api.put(f"{base}/churn/tags/team", json={"value": "risk"}))
    _ok(api.post(f"{base}/churn/archive"))
    events = _read_subject(platform, f"cairn.evt.{project}.model.*", 4)
    assert [e.type for e in events] == ["model.created", "model.updated", "model.tag_set", "model.archived"]
    assert {(e.aggregate, e.aggregate_id, e.subject) for e in events} == {
        ("model", model["id"], subject_for(project, "model", model["id"]))}
    assert _snapshot(platform, subject_for(project, "model", model["id"]))[0] == events[-1].sequence


def test_two_concurrent_creates_of_one_name_give_one_model(platform: Platform, project: str) -> None:
    url = f"{platform.gateway}/api/v1/registry/projects/{project}/models"

    async def race() -> list[list[httpx.Response]]:
        async with httpx.AsyncClient(timeout=30, headers=platform.headers) as client:
            async def pair(name: str) -> list[httpx.Response]:
                return list(await asyncio.gather(*(client.post(url, json={"name": name}) for _ in range(2))))
            return list(await asyncio.gather(*(pair(f"m{i}") for i in range(4))))

    for i, responses in enumerate(asyncio.run(race())):
        assert sorted(r.status_code for r in responses) == [201, 409], [r.text for r in responses]
        refused = next(r for r in responses if r.status_code == 409).json()["error"]
        assert refused["code"] == "already_exists" and f"m{i}" in refused["message"]
    listed = loopback.get(url, headers=platform.headers, timeout=30).json()["models"]
    assert sorted(m["name"] for m in listed) == ["m0", "m1", "m2", "m3"]


def test_renaming_onto_a_taken_name_is_409_and_appends_nothing(platform: Platform, api: httpx.Client,
                                                               project: str) -> None:
    base = f"/projects/{project}/models"
    _ok(api.post(base, json={"name": "a"}), 201)
    _ok(api.post(base, json={"name": "b"}), 201)
    before = stream_last_seq(platform)
    resp = api.patch(f"{base}/b", json={"name": "a"})
    assert resp.status_code == 409 and "'a' already exists" in resp.json()["error"]["message"], resp.text
    assert stream_last_seq(platform) == before
    assert _ok(api.patch(f"{base}/b", json={"name": "c"}))["name"] == "c"
    assert _ok(api.post(base, json={"name": "b"}), 201)["name"] == "b"  # the old name is free again


def test_an_old_log_with_model_events_on_the_project_subject_still_works(platform: Platform, api: httpx.Client,
                                                                         project: str) -> None:
    """Events appended before the move (model.* on ``cairn.evt.<p>.project.<p>``) are read, survive
    a rebuild, and new commands on that model work: its snapshot holds the old events' state at
    the model subject's real position, so appends to it do not conflict."""
    old = [Event("model.created", project, "project", project, {"model_id": "legacy1", "name": "legacy",
                                                                 "description": "from before"}),
           Event("model.tag_set", project, "project", project, {"model_id": "legacy1", "key": "k", "value": "v"}),
           Event("model.updated", project, "project", project, {"model_id": "legacy1", "description": "old"})]

    async def append_old() -> None:
        log = await EventLog.open(platform.nats_url, name="test-old-writer")
        try:
            for event in old:
                await log.append(event, expected_last_subject_seq=None)
        finally:
            await log.close()

    asyncio.run(append_old())
    base = f"/projects/{project}/models/legacy"
    model = _until(lambda: (r := api.get(base)).status_code == 200 and r.json()["description"] == "old"
                   and r.json(), "the old model in the read model")
    assert (model["id"], model["tags"]) == ("legacy1", {"k": "v"})
    subject = subject_for(project, "model", "legacy1")
    assert _snapshot(platform, subject) == (0, {"name": "legacy", "description": "old", "archived": False,
                                                "tags": {"k": "v"}, "latest_version": 0, "versions": {},
                                                "aliases": {}})

    # new commands on the old model: rename (guarded), a version, an alias, a tag
    _error = api.post(f"/projects/{project}/models", json={"name": "legacy"})
    assert _error.status_code == 409, _error.text  # the old model's name is taken
    assert _ok(api.patch(base, json={"name": "legacy-2"}))["name"] == "legacy-2"
    base = f"/projects/{project}/models/legacy-2"
    run = _ok(api.post(f"/projects/{project}/runs", json={}), 201)
    digest = push_model_folder(platform.gateway, platform.headers, project)
    assert _ok(api.post(f"{base}/versions", json={"run_id": run["id"], "artifact_digest": digest}), 201)["version"] == 1
    assert _ok(api.put(f"{base}/aliases/production", json={"version": 1}))["version"] == 1
    assert _ok(api.put(f"{base}/tags/k", json={"value": "w"}))["tags"] == {"k": "w"}
    assert _snapshot(platform, subject)[0] == _last_on(platform, subject)

    admin = f"{platform.gateway}/api/v1/registry/admin"
    live = _ok(loopback.get(f"{admin}/content-hash", headers=platform.headers, timeout=60))
    rebuilt = _ok(loopback.post(f"{admin}/rebuild", headers=platform.headers, timeout=120))
    assert (rebuilt["applied_seq"], rebuilt["content_hash"]) == (live["applied_seq"], live["content_hash"])
    assert _snapshot(platform, subject)[0] == _last_on(platform, subject)
    # after the rebuild, commands on it still land (no conflict with a position that is not on its subject)
    assert _ok(api.post(f"{base}/archive"))["archived"] is True
    assert _ok(api.post(f"/projects/{project}/models", json={"name": "legacy"}), 201)["name"] == "legacy"
    got = _ok(api.get(base))
    assert (got["id"], got["aliases"], got["tags"], got["description"]) == (
        "legacy1", {"production": 1}, {"k": "w"}, "old")
