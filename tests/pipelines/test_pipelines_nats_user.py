"""The pipelines service's NATS user on a real nats-server with Cairn's users: it appends its own
events of record (pipeline runs, registered pipelines) but not another service's: the jobs, model
versions and deployments it changes go through those services' APIs."""

from __future__ import annotations

import asyncio
from pathlib import Path

import nats

from cairn.kernel.natsauth import ADMIN_USER, PIPELINES_USER, NatsCredentials, ensure_credentials
from cairn.natsserver import start_nats_server

DEADLINE_S = 10.0


def test_the_pipelines_user_appends_only_its_own_events(tmp_path: Path) -> None:
    files = ensure_credentials(tmp_path / "secrets", [ADMIN_USER, PIPELINES_USER])
    creds = {user: NatsCredentials.read(path) for user, path in files.items()}
    proc, url = start_nats_server(tmp_path / "nats", users=creds.values())

    async def scenario() -> None:
        errors: list[str] = []

        async def collect(err: Exception) -> None:
            errors.append(str(err).lower())

        client = await nats.connect(url, error_cb=collect, **creds[PIPELINES_USER].connect_options())
        try:
            own = ["cairn.evt.shop.pipeline_run.r1", "cairn.evt.shop.pipeline.fraud-ml",
                   "cairn.evt._site.projection.pipelines"]
            others = ["cairn.evt.shop.job.j1", "cairn.evt.shop.model.m1", "cairn.evt.shop.deployment.fraud",
                      "cairn.evt._site.projection.registry", "cairn.cmd.registry.create_run"]
            for subject in own + others:
                await client.publish(subject, b"{}")
            await client.flush()
            loop = asyncio.get_running_loop()
            deadline = loop.time() + DEADLINE_S
            while not all(any(f'publish to "{s}"' in e for e in errors) for s in others):
                assert loop.time() < deadline, f"not every forged publish was refused: {errors}"
                await asyncio.sleep(0.02)
            assert not [s for s in own if any(f'publish to "{s}"' in e for e in errors)], errors
        finally:
            await client.close()

    try:
        asyncio.run(scenario())
    finally:
        proc.terminate()
        proc.wait(timeout=10)
