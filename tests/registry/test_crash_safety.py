"""SIGKILL the registry with 1,000 commands in flight: nothing acknowledged is lost, and the
projection equals a full rebuild from the log."""

from __future__ import annotations

import asyncio
import time

import httpx
import loopback

from platform_harness import Platform


def test_sigkill_during_1000_commands_loses_nothing_acknowledged(platform: Platform, project: str,
                                                                 api: httpx.Client) -> None:
    base = f"{platform.gateway}/api/v1/registry/projects/{project}"
    target = api.post(f"/projects/{project}/runs", json={"name": "tagged"}).json()
    acked_runs: dict[str, str] = {}
    acked_tags: dict[str, str] = {}

    async def command(client: httpx.AsyncClient, connections: asyncio.Semaphore, i: int) -> None:
        async with connections:
            try:
                if i % 2:
                    resp = await client.post(f"{base}/runs", json={"name": f"c{i}", "params": {"i": i}})
                    if resp.status_code == 201:
                        acked_runs[resp.json()["id"]] = f"c{i}"
                else:
                    resp = await client.put(f"{base}/runs/{target['id']}/tags/k{i}", json={"value": str(i)})
                    if resp.status_code == 200:
                        acked_tags[f"k{i}"] = str(i)
            except httpx.HTTPError:
                pass  # not acknowledged: allowed to be lost or applied

    async def storm() -> None:
        limits = httpx.Limits(max_connections=100)
        # 100 on the wire at once, as the pool allows; the other commands wait for a connection
        # here rather than in httpx's pool, which goes through its whole queue on every response
        # (1,000 waiting there kept this process at full CPU: ~10 s to reach 150 acknowledged)
        connections = asyncio.Semaphore(100)
        async with httpx.AsyncClient(timeout=30, limits=limits, headers=platform.headers) as client:
            tasks = [asyncio.create_task(command(client, connections, i)) for i in range(1000)]
            deadline = time.monotonic() + 60
            while len(acked_runs) + len(acked_tags) < 150:
                assert time.monotonic() < deadline, "150 commands were not acknowledged within 60 s"
                assert not all(task.done() for task in tasks), "every command ended before 150 were acknowledged"
                await asyncio.sleep(0.01)
            platform.kill("registry")
            await asyncio.wait_for(asyncio.gather(*tasks), timeout=120)

    asyncio.run(storm())
    acknowledged = len(acked_runs) + len(acked_tags)
    assert 150 <= acknowledged < 1000, "the kill happened while commands were in flight"

    platform.start_service("registry")
    platform.wait_healthy()
    deadline = time.monotonic() + 30
    while True:
        status = loopback.get(f"{platform.gateway}/api/v1/status", headers=platform.headers, timeout=10).json()
        if status["services"]["registry"]["lag"] == 0:
            break
        assert time.monotonic() < deadline, f"the restarted registry did not catch up: {status['services']['registry']}"
        time.sleep(0.1)

    for run_id, name in acked_runs.items():
        run = api.get(f"/projects/{project}/runs/{run_id}")
        assert run.status_code == 200, run.text
        assert run.json()["name"] == name
    tags = api.get(f"/projects/{project}/runs/{target['id']}").json()["tags"]
    assert acked_tags.items() <= tags.items()

    live = api.get(f"{platform.gateway}/api/v1/registry/admin/content-hash").json()
    rebuilt = api.post(f"{platform.gateway}/api/v1/registry/admin/rebuild").json()
    assert rebuilt["applied_seq"] == live["applied_seq"]
    assert rebuilt["content_hash"] == live["content_hash"]
