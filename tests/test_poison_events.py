"""A poison event on the log (schema-valid, for a run that never existed) is parked by the
registry, which stays ready and keeps answering writes; admins see, skip and retry it through
the gateway and the CLI, and a rebuild ends with the same read model and the same parked set."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import httpx
import loopback
from click.testing import CliRunner

from cairn.cli.main import cli
from cairn.kernel.envelope import Event
from cairn.kernel.eventlog import EventLog
from cairn.kernel.ids import new_id

from platform_harness import Platform, read_all_events


def publish(platform: Platform, event: Event) -> int:
    """Append ``event`` straight onto the log, as a buggy writer with credentials could."""

    async def append() -> int:
        log = await EventLog.open(platform.nats_url, name="test-poisoner")
        try:
            return (await log.append(event, expected_last_subject_seq=None)).sequence
        finally:
            await log.close()

    return asyncio.run(append())


def poison(platform: Platform, project: str, run_id: str) -> int:
    return publish(platform, Event(type="run.tag_set", project=project, aggregate="run", aggregate_id=run_id,
                                   data={"key": "k", "value": "v"}, actor="test"))


def healthz(platform: Platform) -> dict[str, Any]:
    resp = loopback.get(f"{platform.gateway}/api/v1/status", headers=platform.headers, timeout=10)
    assert resp.status_code == 200, resp.text
    return resp.json()["services"]["registry"]


def wait_parked(platform: Platform, count: int) -> None:
    deadline = time.monotonic() + 20
    while healthz(platform).get("parked") != count:
        assert time.monotonic() < deadline, f"registry never reported {count} parked: {healthz(platform)}"
        time.sleep(0.05)


def cairn(platform: Platform, *args: str) -> Any:
    result = CliRunner(env={"CAIRN_TOKEN": platform.token}).invoke(
        cli, ["--url", platform.gateway, "--json", *args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_a_poison_event_is_parked_and_the_registry_stays_ready(platform: Platform, api: httpx.Client,
                                                               project: str) -> None:
    ghost = new_id()
    seq = poison(platform, project, ghost)
    wait_parked(platform, 1)
    status = healthz(platform)
    assert status["ready"] is True and status["error"] is None

    # a later write is answered at once (no 503 after the projection's 10 s wait)
    run = api.post(f"/projects/{project}/runs", json={"name": "after-poison"})
    assert run.status_code == 201, run.text

    parked = cairn(platform, "admin", "parked", "list", "registry")["parked"]
    assert [(p["sequence"], p["type"]) for p in parked] == [(seq, "run.tag_set")]
    assert "does not exist" in parked[0]["error"]
    notices = [e for e in read_all_events(platform.nats_url) if e["type"] == "projection.event_parked"]
    assert [(n["aggregate_id"], n["data"]["sequence"]) for n in notices] == [("registry", seq)]

    # skip: gone, and the log names who skipped it
    skipped = cairn(platform, "admin", "parked", "skip", "registry", str(seq))
    assert skipped["skipped"] is True
    assert cairn(platform, "admin", "parked", "list", "registry")["parked"] == []
    [skip] = [e for e in read_all_events(platform.nats_url) if e["type"] == "projection.event_skipped"]
    assert skip["data"] == {"service": "registry", "sequence": seq} and skip["actor"] == skipped["actor"]

    # a second poison; retried before its run exists it stays parked (409), after it applies
    second = poison(platform, project, ghost)
    wait_parked(platform, 1)
    gateway = f"{platform.gateway}/api/v1/registry/admin/parked"
    early = loopback.post(f"{gateway}/{second}/retry", headers=platform.headers, timeout=30)
    assert early.status_code == 409 and "does not exist" in early.json()["error"]["message"]
    experiment = run.json()["experiment_id"]
    publish(platform, Event(type="run.created", project=project, aggregate="run", aggregate_id=ghost, actor="test",
                            data={"experiment_id": experiment, "name": "ghost", "params": {}, "tags": {},
                                  "description": "", "status": "running"}))
    assert cairn(platform, "admin", "parked", "retry", "registry", str(second))["retried"] is True
    assert healthz(platform)["parked"] == 0
    shown = api.get(f"/projects/{project}/runs/{ghost}")
    assert shown.status_code == 200 and shown.json()["tags"] == {"k": "v"}
    # the run's snapshot kept its latest sequence: commands on it still go through
    tagged = api.put(f"/projects/{project}/runs/{ghost}/tags/after", json={"value": "retry"})
    assert tagged.status_code < 300, tagged.text

    # a third stays parked; a rebuild replays every decision: same read model, same parked set
    third = poison(platform, project, new_id())
    wait_parked(platform, 1)
    before = loopback.get(f"{platform.service_url('registry')}/admin/content-hash", timeout=10,
                       headers=_internal(platform)).json()
    rebuilt = cairn(platform, "admin", "rebuild", "registry")
    assert rebuilt["content_hash"] == before["content_hash"]
    assert [p["sequence"] for p in cairn(platform, "admin", "parked", "list", "registry")["parked"]] == [third]


def test_unknown_parked_sequences_are_404(platform: Platform) -> None:
    for action in ("retry", "skip"):
        resp = loopback.post(f"{platform.gateway}/api/v1/registry/admin/parked/999999/{action}",
                          headers=platform.headers, timeout=10)
        assert resp.status_code == 404 and "no parked event" in resp.json()["error"]["message"]


def test_the_gateway_parks_its_own_poison_events_and_keeps_authenticating(platform: Platform) -> None:
    """The gateway's projection is made by the same factory: a revocation of a token that never
    existed is parked, the gateway keeps answering, and site admins see and skip it under
    /api/v1/gateway/admin/parked like any service's."""
    ghost = f"ghost-{new_id()[:8]}"
    seq = publish(platform, Event(type="token.revoked", project="_site", aggregate="user", aggregate_id=ghost,
                                  data={"user": ghost, "token_id": "never-made"}, actor="test"))
    deadline = time.monotonic() + 20

    def gateway_status() -> dict[str, Any]:
        resp = loopback.get(f"{platform.gateway}/api/v1/status", headers=platform.headers, timeout=10)
        assert resp.status_code == 200, resp.text
        return resp.json()["services"]["gateway"]

    while gateway_status().get("parked") != 1:
        assert time.monotonic() < deadline, f"the gateway never reported its parked event: {gateway_status()}"
        time.sleep(0.05)
    assert gateway_status()["ready"] is True
    assert loopback.get(f"{platform.gateway}/api/v1/whoami", headers=platform.headers, timeout=10).status_code == 200
    parked = cairn(platform, "admin", "parked", "list", "gateway")["parked"]
    assert [(p["sequence"], p["type"]) for p in parked] == [(seq, "token.revoked")]
    # a caller who is not a site admin gets nothing from these routes
    assert loopback.get(f"{platform.gateway}/api/v1/gateway/admin/parked", timeout=10).status_code == 401
    assert cairn(platform, "admin", "parked", "skip", "gateway", str(seq))["skipped"] is True
    assert cairn(platform, "admin", "parked", "list", "gateway")["parked"] == []
    rebuilt = cairn(platform, "admin", "rebuild", "gateway")
    assert rebuilt["service"] == "gateway" and cairn(platform, "admin", "parked", "list", "gateway")["parked"] == []


def _internal(platform: Platform) -> dict[str, str]:
    from cairn.kernel.identity import Signer, load_service_key

    return Signer(load_service_key(platform.root / "data"), "gateway").internal()
