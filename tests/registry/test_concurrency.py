"""Concurrent writers, idempotent retries, and every emitted event against its schema."""

from __future__ import annotations

import asyncio

import httpx

from cairn.kernel.schemas import current_version, known_schemas
from cairn.services.artifacts.domain import EVENT_SCHEMAS as ARTIFACT_EVENT_SCHEMAS

from model_helpers import push_model_folder
from platform_harness import Platform, read_all_events, stream_last_seq


def test_twenty_concurrent_tag_writers_lose_no_update(platform: Platform, project: str, api: httpx.Client) -> None:
    run = api.post(f"/projects/{project}/runs", json={}).json()
    url = f"{platform.gateway}/api/v1/registry/projects/{project}/runs/{run['id']}/tags"

    async def write_all() -> list[httpx.Response]:
        async with httpx.AsyncClient(timeout=30, headers=platform.headers) as client:
            return await asyncio.gather(*(client.put(f"{url}/k{i}", json={"value": f"v{i}"}) for i in range(20)))

    responses = asyncio.run(write_all())
    statuses = [r.status_code for r in responses]
    assert set(statuses) <= {200, 409}, statuses
    applied = {f"k{i}": f"v{i}" for i, r in enumerate(responses) if r.status_code == 200}
    tags = api.get(f"/projects/{project}/runs/{run['id']}").json()["tags"]
    assert tags == applied
    assert len(applied) == 20  # writers to one aggregate are serialised, so none had to give up


def test_same_idempotency_key_five_times_appends_one_event(platform: Platform, project: str,
                                                           api: httpx.Client) -> None:
    before = stream_last_seq(platform)
    headers = {"Idempotency-Key": "create-run-once"}
    bodies = [api.post(f"/projects/{project}/runs", json={"name": "once"}, headers=headers) for _ in range(5)]
    assert [r.status_code for r in bodies] == [201] * 5
    assert len({r.json()["id"] for r in bodies}) == 1
    assert stream_last_seq(platform) == before + 1

    run_id = bodies[0].json()["id"]
    tag_headers = {"Idempotency-Key": "tag-once"}
    for _ in range(5):
        assert api.put(f"/projects/{project}/runs/{run_id}/tags/t", json={"value": "1"},
                       headers=tag_headers).status_code == 200
    assert stream_last_seq(platform) == before + 2


def test_concurrent_duplicates_with_one_key_append_once(platform: Platform, project: str) -> None:
    url = f"{platform.gateway}/api/v1/registry/projects/{project}/runs"
    before = stream_last_seq(platform)

    async def send() -> list[httpx.Response]:
        async with httpx.AsyncClient(timeout=30, headers=platform.headers) as client:
            return await asyncio.gather(*(client.post(url, json={}, headers={"Idempotency-Key": "dup"})
                                          for _ in range(5)))

    responses = asyncio.run(send())
    assert [r.status_code for r in responses] == [201] * 5
    assert len({r.json()["id"] for r in responses}) == 1
    assert stream_last_seq(platform) == before + 1


def test_every_event_in_the_log_matches_its_schema(platform: Platform, project: str, api: httpx.Client) -> None:
    # Exercise every command once more so this test stands alone, then check the whole log.
    run = api.post(f"/projects/{project}/runs", json={"params": {"a": 1}, "start": False}).json()
    base = f"/projects/{project}/runs/{run['id']}"
    exp = api.post(f"/projects/{project}/experiments", json={"name": "e"}).json()
    model_digest = push_model_folder(platform.gateway, platform.headers, project)
    steps = [
        ("patch", f"/projects/{project}", {"description": "x"}),
        ("post", f"/projects/{project}/archive", None), ("post", f"/projects/{project}/restore", None),
        ("patch", f"/projects/{project}/experiments/{exp['id']}", {"name": "e2", "description": "d"}),
        ("put", f"/projects/{project}/experiments/{exp['id']}/tags/k", {"value": "v"}),
        ("delete", f"/projects/{project}/experiments/{exp['id']}/tags/k", None),
        ("post", f"/projects/{project}/experiments/{exp['id']}/archive", None),
        ("post", f"/projects/{project}/experiments/{exp['id']}/restore", None),
        ("post", f"{base}/start", None), ("post", f"{base}/params", {"params": {"b": 2}}),
        ("put", f"{base}/tags/k", {"value": "v"}), ("delete", f"{base}/tags/k", None),
        ("patch", base, {"name": "n", "description": "d"}), ("post", f"{base}/archive", None),
        ("post", f"{base}/restore", None), ("post", f"{base}/finish", {"status": "killed"}),
        ("put", f"{base}/environment", {"command": ["python", "train.py"], "seeds": {"seed": 1}}),
        ("post", f"/projects/{project}/models", {"name": "m"}),
        ("patch", f"/projects/{project}/models/m", {"description": "d"}),
        ("put", f"/projects/{project}/models/m/tags/k", {"value": "v"}),
        ("post", f"/projects/{project}/models/m/versions", {"run_id": run["id"], "artifact_digest": model_digest}),
        ("patch", f"/projects/{project}/models/m/versions/1", {"description": "d"}),
        ("put", f"/projects/{project}/models/m/versions/1/tags/k", {"value": "v"}),
        ("delete", f"/projects/{project}/models/m/versions/1/tags/k", None),
        ("delete", f"/projects/{project}/models/m/tags/k", None),
        ("post", f"/projects/{project}/models/m/versions/without-files",
         {"source": "s3://elsewhere/model", "reason": "Cairn does not hold s3:// files"}),
        ("put", f"/projects/{project}/models/m/aliases/prod", {"version": 1}),
        ("delete", f"/projects/{project}/models/m/aliases/prod", None),
        ("post", f"/projects/{project}/models/m/versions/1/archive", None),
        ("post", f"/projects/{project}/models/m/versions/1/restore", None),
        ("post", f"/projects/{project}/models/m/archive", None),
        ("post", f"/projects/{project}/models/m/restore", None),
    ]
    for method, path, body in steps:
        resp = api.request(method.upper(), path, json=body)
        assert resp.status_code < 300, (path, resp.text)

    import jsonschema  # here, not at collection: ~1 s on every xdist worker

    schemas = known_schemas()
    seen = set()
    for event in read_all_events(platform.nats_url):
        jsonschema.validate(event, schemas["envelope.v1"])
        jsonschema.validate(event["data"], schemas[f"{event['type']}.v{event['version']}"])
        seen.add(f"{event['type']}.v{event['version']}")
    registry_owned = {s for s in schemas if s.split(".")[0] in ("project", "experiment", "run", "model",
                                                                 "model_version")} - set(ARTIFACT_EVENT_SCHEMAS)
    # versions no command writes any more (run.created v1: v2 adds an optional record) stay readable only
    registry_owned = {s for s in registry_owned if int(s.rsplit(".v", 1)[1]) == current_version(s.rsplit(".v", 1)[0])}
    assert registry_owned <= seen, f"registry schemas never exercised: {registry_owned - seen}"
