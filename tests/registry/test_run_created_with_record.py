"""A run created together with its reproducibility record (what the scheduler does for a job):
one command, one ``run.created`` v2 event carrying the record; a bad record creates nothing; a
repeat is one run; the artifact store and lineage read the record from it."""

from __future__ import annotations

import asyncio
import json
import secrets
import sqlite3
import time

import httpx
import nats
import pytest

from cairn.kernel.envelope import subject_for
from cairn.kernel.schemas import current_version
from cairn.services.registry.domain import evolve_run

from platform_harness import Platform

pytestmark = pytest.mark.shared_stack  # see tests/conftest.py

CODE = {"archive_digest": "ab" * 32, "archive_bytes": 10, "files": 1, "commit": "c0ffee", "branch": "main"}


def _runs(api: httpx.Client, project: str) -> list[dict]:
    return api.get(f"/projects/{project}/runs").json()["runs"]


def test_a_run_created_with_its_record_has_both(api: httpx.Client, project: str) -> None:
    body = {"name": "job-1", "start": False,
            "record": {"code": CODE, "command": ["python", "train.py"], "seeds": {"seed": 7}}}
    resp = api.post(f"/projects/{project}/runs", json=body, headers={"Idempotency-Key": "job-run-1"})
    assert resp.status_code == 201, resp.text
    run = resp.json()
    assert run["status"] == "scheduled"
    record = api.get(f"/projects/{project}/runs/{run['id']}/environment").json()
    assert record["command"] == ["python", "train.py"] and record["seeds"] == {"seed": 7}
    assert record["code"]["commit"] == "c0ffee"
    again = api.post(f"/projects/{project}/runs", json=body, headers={"Idempotency-Key": "job-run-1"})
    assert again.status_code == 201 and again.json()["id"] == run["id"]
    assert [r["id"] for r in _runs(api, project)] == [run["id"]]
    # the record is the run's: the job's own start_run adds its environment, a different command is refused
    added = api.put(f"/projects/{project}/runs/{run['id']}/environment", json={"environment": {"python": "3.11"}})
    assert added.status_code == 200, added.text
    changed = api.put(f"/projects/{project}/runs/{run['id']}/environment", json={"command": ["other"]})
    assert changed.status_code == 409


def test_a_bad_record_creates_no_run(api: httpx.Client, project: str) -> None:
    for record, status in (({"code": {"archive_digest": "not-hex"}}, 422), ({}, 422),
                           ({"command": ["x"], "seeds": {"": 1}}, 422)):
        resp = api.post(f"/projects/{project}/runs", json={"name": "bad", "record": record})
        assert resp.status_code == status, (record, resp.text)
        assert "error" in resp.json()
    assert _runs(api, project) == []


def _events_of(nats_url: str, subject: str) -> list[dict]:
    async def read() -> list[dict]:
        nc = await nats.connect(nats_url, max_reconnect_attempts=1)
        try:
            sub = await nc.jetstream().subscribe(subject, ordered_consumer=True)
            found = []
            while True:
                try:
                    msg = await sub.next_msg(timeout=1.0)
                except nats.errors.TimeoutError:
                    return found
                found.append(json.loads(msg.data))
        finally:
            await nc.close()

    return asyncio.run(read())


def test_the_run_and_its_record_are_one_event_of_the_current_version(api: httpx.Client, project: str,
                                                            platform: Platform) -> None:
    body = {"name": "job-2", "start": False, "record": {"code": CODE, "command": ["python", "t.py"]}}
    run = api.post(f"/projects/{project}/runs", json=body).json()
    events = _events_of(platform.nats_url, subject_for(project, "run", run["id"]))
    assert [(e["type"], e["version"]) for e in events] == [("run.created", current_version("run.created"))]
    record = events[0]["data"]["record"]
    assert record["command"] == ["python", "t.py"] and {k: record["code"][k] for k in CODE} == CODE
    plain = api.post(f"/projects/{project}/runs", json={"name": "no-record"}).json()
    [created] = _events_of(platform.nats_url, subject_for(project, "run", plain["id"]))
    assert created["version"] >= 2 and "record" not in created["data"]


def test_a_v2_creation_evolves_like_a_creation_and_then_its_record() -> None:
    base = {"name": "r", "status": "scheduled", "params": {}, "tags": {}, "description": "", "experiment_id": "e"}
    record = {"code": {"commit": "c1"}, "seeds": {"seed": 3}}
    in_one = evolve_run(None, "run.created", {**base, "record": record})
    in_two = evolve_run(evolve_run(None, "run.created", base), "run.environment_recorded", record)
    assert in_one == in_two and in_one["record"]


def test_the_artifact_store_and_lineage_read_the_record_a_run_was_created_with(
        api: httpx.Client, project: str, platform: Platform) -> None:
    digest = secrets.token_hex(32)  # a blob no other test refers to: blob_refs spans every project
    code = {**CODE, "archive_digest": digest}
    run = api.post(f"/projects/{project}/runs", json={"name": "coded", "record": {"code": code}}).json()
    http = httpx.Client(base_url=f"{platform.gateway}/api/v1", headers=platform.headers, timeout=30)
    store = platform.root / "data" / "artifacts" / "artifacts.sqlite3"
    deadline = time.monotonic() + 15
    while True:
        upstream = http.get(f"/lineage/projects/{project}/upstream",
                            params={"node": f"run:{run['id']}", "depth": 1})
        with sqlite3.connect(store) as db:
            refs = db.execute("SELECT source FROM blob_refs WHERE digest=?", (digest,)).fetchall()
        if (upstream.status_code == 200 and digest in upstream.text) and refs:
            break
        assert time.monotonic() < deadline, (upstream.text, refs)
        time.sleep(0.1)
    assert refs == [(f"code:{project}/{run['id']}",)]  # kept from GC, readable by the run's project
