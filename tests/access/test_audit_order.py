"""The audit log newest first: ``GET /api/v1/audit?order=desc`` pages backwards from the newest
event with ``before``, keeping its filters; the forward paging (``cursor``) is unchanged."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from cairn.kernel.envelope import Event
from cairn.kernel.eventlog import EventLog
from cairn.services.gateway.audit import audit_page, audit_page_desc

from platform_harness import Platform


def _event(project: str, run: str, key: str, actor: str) -> Event:
    return Event(type="run.tag_set", project=project, aggregate="run", aggregate_id=run,
                 data={"key": key, "value": "v"}, actor=actor)


async def _walk_back(log: EventLog, **filters: object) -> list[int]:
    """Every page of the backward walk (windows of 4 sequences, pages of 3), joined."""
    seen: list[int] = []
    before = None
    for _ in range(100):
        page = await audit_page_desc(log, before=before, limit=3, first_window=4, **filters)  # type: ignore[arg-type]
        assert len(page["events"]) <= 3
        seen += [e["sequence"] for e in page["events"]]
        before = page["next_cursor"]
        if before is None:
            return seen
    raise AssertionError("the backward walk did not end")


def test_backward_pages_cross_windows_and_match_the_forward_walk_reversed(nats_url: str) -> None:
    async def scenario() -> None:
        log = await EventLog.open(nats_url)
        # project "near" is sparse among "far"'s events, so its pages span several windows
        for i in range(60):
            project = "near" if i % 7 == 0 else "far"
            await log.append(_event(project, f"r{i % 3}", f"k{i}", "alice" if i % 2 else "bob:tok"),
                             expected_last_subject_seq=None)
        for filters in ({"project": "near", "actor": None, "types": None},
                        {"project": None, "actor": "bob", "types": "run.*"},
                        {"project": "far", "actor": "alice", "types": "run.tag_*"}):
            forward = await audit_page(log, since=None, after=0, limit=1000, **filters)  # type: ignore[arg-type]
            expected = [e["sequence"] for e in forward["events"]][::-1]
            assert expected, filters
            assert await _walk_back(log, since=None, **filters) == expected
        near = await audit_page_desc(log, project="near", actor=None, types=None, since=None, before=None, limit=2,
                                     first_window=4)
        assert [e["data"]["key"] for e in near["events"]] == ["k56", "k49"]  # the newest first
        older = await audit_page_desc(log, project="near", actor=None, types=None, since=None,
                                      before=near["next_cursor"], limit=2, first_window=4)
        assert [e["data"]["key"] for e in older["events"]] == ["k42", "k35"]
        assert (await audit_page_desc(log, project="none", actor=None, types=None, since=None, before=None,
                                      limit=5))["events"] == []
        await log.close()

    asyncio.run(scenario())


@pytest.mark.shared_stack
def test_audit_route_newest_first_with_older_pages(platform: Platform) -> None:
    admin = httpx.Client(base_url=f"{platform.gateway}/api/v1", headers=platform.headers, timeout=30)
    admin.post("/registry/projects", json={"name": "audit-desc"}).raise_for_status()
    run = admin.post("/registry/projects/audit-desc/runs", json={}).json()
    for i in range(5):
        admin.put(f"/registry/projects/audit-desc/runs/{run['id']}/tags/t{i}", json={"value": "x"}).raise_for_status()
    seen, before = [], None
    while True:
        params = {"project": "audit-desc", "type": "run.*", "limit": 2, "order": "desc"}
        page = admin.get("/audit", params={**params, **({"before": before} if before else {})}).json()
        seen += page["events"]
        if page["next_cursor"] is None:
            break
        before = page["next_cursor"]
    assert [e["type"] for e in seen] == ["run.tag_set"] * 5 + ["run.created"]
    assert [e["data"].get("key") for e in seen[:5]] == ["t4", "t3", "t2", "t1", "t0"]
    assert [e["sequence"] for e in seen] == sorted((e["sequence"] for e in seen), reverse=True)
    for bad, field in (({"order": "desc", "cursor": 3}, "cursor"), ({"before": 3}, "before"),
                       ({"order": "sideways"}, "order")):
        resp = admin.get("/audit", params={"project": "audit-desc", **bad})
        assert resp.status_code == 422, bad
        assert field in resp.text
    future = admin.get("/audit", params={"project": "audit-desc", "order": "desc", "since": "2999-01-01T00:00:00Z"})
    assert future.json() == {"events": [], "next_cursor": None}
