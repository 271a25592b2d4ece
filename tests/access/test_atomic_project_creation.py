"""Creating a project is one event that makes its creator its first admin: the creator sees and
administers it right after the 201, a site admin's project has no members, and the gateway's
memberships rebuilt from a log of the old two-event shape equal the new shape's."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import httpx
import pytest

from cairn.kernel.envelope import Event, aggregate_subjects, subject_for
from cairn.kernel.eventlog import EventLog
from cairn.kernel.projection import ProjectionRunner
from cairn.services.gateway.projection import projection
from cairn.services.gateway.store import GatewayStore

from platform_harness import Platform, read_all_events

pytestmark = pytest.mark.shared_stack  # see tests/conftest.py
TAG = f"ac{os.getpid()}"


def _user_client(platform: Platform, user: str) -> httpx.Client:
    admin = httpx.Client(base_url=f"{platform.gateway}/api/v1", headers=platform.headers, timeout=30)
    token = admin.post("/tokens", json={"user": user}).json()["token"]
    return httpx.Client(base_url=f"{platform.gateway}/api/v1", timeout=30,
                        headers={"Authorization": f"Bearer {token}"})


def test_the_creator_sees_and_administers_the_project_right_after_creating_it(platform: Platform) -> None:
    creator, project = f"{TAG}-maker", f"{TAG}-made"
    with _user_client(platform, creator) as me:
        assert me.post("/registry/projects", json={"name": project}).status_code == 201
        assert me.get(f"/registry/projects/{project}").status_code == 200  # no wait: read-your-writes
        assert project in me.get("/whoami").json()["projects"]
        added = me.post(f"/projects/{project}/members", json={"user": f"{TAG}-friend", "role": "viewer"})
        assert added.status_code == 200, added.text
        assert {(m["user"], m["role"]) for m in added.json()["members"]} == {(creator, "admin"),
                                                                            (f"{TAG}-friend", "viewer")}
    events = [e for e in read_all_events(platform.nats_url) if e["project"] == project]
    assert [(e["type"], e["version"]) for e in events if e["type"].startswith(("project.", "member."))] == [
        ("project.created", 2), ("member.added", 1)]  # the creator's membership is in the creation
    assert events[0]["data"]["first_admin"] == creator


def test_a_site_admins_project_has_no_members_and_the_creator_can_be_removed(platform: Platform) -> None:
    admin = httpx.Client(base_url=f"{platform.gateway}/api/v1", headers=platform.headers, timeout=30)
    project = f"{TAG}-site"
    assert admin.post("/registry/projects", json={"name": project}).status_code == 201
    assert admin.get(f"/projects/{project}/members").json()["members"] == []
    creator, theirs = f"{TAG}-leaver", f"{TAG}-theirs"
    with _user_client(platform, creator) as me:
        assert me.post("/registry/projects", json={"name": theirs}).status_code == 201
    # the membership aggregate knows the creator (seeded from project.created): removing is not a 404
    removed = admin.delete(f"/projects/{theirs}/members/{creator}")
    assert removed.status_code == 200, removed.text
    assert removed.json()["members"] == []


def _append(platform: Platform, events: list[Event]) -> None:
    async def append() -> None:
        log = await EventLog.open(platform.nats_url, name="test-old-shape")
        try:
            for event in events:
                await log.append(event, expected_last_subject_seq=None)
        finally:
            await log.close()

    asyncio.run(append())


def _rebuilt_gateway_members(platform: Platform, path: Path, projects: list[str]) -> dict[str, object]:
    """Replay the whole log into a fresh gateway read model (the gateway's projection code)."""
    async def rebuild() -> dict[str, object]:
        log = await EventLog.open(platform.nats_url, name="test-gateway-rebuild")
        store = GatewayStore(path)
        runner = ProjectionRunner(log, store, projection(), durable=f"test-gateway-rebuild-{os.getpid()}",
                                  filter_subjects=aggregate_subjects(("membership", "project")))
        try:
            await runner.start()
            await runner.wait_for(await log.last_sequence(), timeout=120)
            out: dict[str, object] = {}
            for p in projects:
                row = store.query_one("SELECT state FROM aggregates WHERE subject=?",
                                      (subject_for(p, "membership", p),))
                out[p] = ([(m["user"], m["role"]) for m in store.members(p)], row["state"] if row else None)
            return out
        finally:
            await runner.stop()
            await log.js.delete_consumer(log.stream, runner.durable)
            await log.close()
            store.close()

    return asyncio.run(rebuild())


def test_an_old_shaped_log_rebuilds_to_the_same_memberships(platform: Platform, tmp_path: Path) -> None:
    creator, old, new = f"{TAG}-rebuilder", f"{TAG}-old", f"{TAG}-new"
    created = {"name": old, "description": "", "default_experiment_id": f"{TAG}exp"}
    _append(platform, [  # what the registry and then the gateway appended before project.created v2
        Event(type="project.created", version=1, project=old, aggregate="project", aggregate_id=old,
              data=created, actor=f"{creator}:x"),
        Event(type="member.added", version=1, project=old, aggregate="membership", aggregate_id=old,
              data={"user": creator, "role": "admin"}, actor=f"{creator}:x")])
    with _user_client(platform, creator) as me:
        assert me.post("/registry/projects", json={"name": new}).status_code == 201
        assert me.get(f"/registry/projects/{old}").status_code == 200  # the live gateway read the old shape
    rebuilt = _rebuilt_gateway_members(platform, tmp_path / "gateway.sqlite3", [old, new])
    assert rebuilt[old] == rebuilt[new] == ([(creator, "admin")], f'{{"members":{{"{creator}":"admin"}}}}')
