"""Every event type the gateway emits matches its schema."""

from __future__ import annotations

import time

import httpx

from cairn.kernel.schemas import current_version, known_schemas

from platform_harness import Platform, read_all_events


def test_gateway_events_match_their_schemas(platform: Platform) -> None:
    admin = httpx.Client(base_url=f"{platform.gateway}/api/v1", headers=platform.headers, timeout=30)
    token = admin.post("/tokens", json={"user": "gus"}).json()
    admin.delete(f"/tokens/{token['token_id']}").raise_for_status()
    admin.post("/registry/projects", json={"name": "evs"}).raise_for_status()
    admin.post("/projects/evs/members", json={"user": "gus", "role": "editor"}).raise_for_status()
    admin.delete("/projects/evs/members/gus").raise_for_status()
    hook = admin.post("/projects/evs/webhooks", json={"url": "http://127.0.0.1:9/closed", "types": ["run.*"]}).json()
    admin.post("/registry/projects/evs/runs", json={}).raise_for_status()
    letters = f"/projects/evs/webhooks/{hook['id']}/dead-letters"
    deadline = time.monotonic() + 20
    while not admin.get(letters).json()["dead_letters"]:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    admin.post(f"/projects/evs/webhooks/{hook['id']}/replay").raise_for_status()
    assert admin.delete(f"/projects/evs/webhooks/{hook['id']}").status_code == 204

    import jsonschema  # here, not at collection: ~1 s on every xdist worker

    schemas = known_schemas()
    seen = set()
    for event in read_all_events(platform.nats_url):
        jsonschema.validate(event, schemas["envelope.v1"])
        jsonschema.validate(event["data"], schemas[f"{event['type']}.v{event['version']}"])
        seen.add(f"{event['type']}.v{event['version']}")
    # what the gateway writes today: each of its types at its current version (older ones stay readable)
    gateway_owned = {f"{t}.v{current_version(t)}" for t in {s.rsplit(".v", 1)[0] for s in schemas}
                     if t.split(".")[0] in ("token", "member", "webhook")}
    assert gateway_owned <= seen, f"never exercised: {gateway_owned - seen}"
