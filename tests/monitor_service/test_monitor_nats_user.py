"""The monitor's NATS user on a real nats-server with Cairn's users: it reads the inference log
(a consumer on the stream) but cannot write samples or labels into it, nor append another
service's events of record."""

from __future__ import annotations

import asyncio
from pathlib import Path

import nats
import pandas as pd

from cairn.kernel.natsauth import ADMIN_USER, NatsCredentials, ensure_credentials
from cairn.natsserver import start_nats_server
from cairn.protocol import feedback_subject, inference_subject
from cairn.serving.inference_log import NatsInferenceSink, ensure_inference_stream, read_samples
from cairn.serving.sink import InferenceSample

DEADLINE_S = 10.0


async def _refused(errors: list[str], subject: str) -> None:
    expected = f'permissions violation for publish to "{subject}"'
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DEADLINE_S
    while not any(expected in err for err in errors):
        assert loop.time() < deadline, f"no permission error for publish {subject}: {errors}"
        await asyncio.sleep(0.02)


def test_the_monitor_reads_the_inference_log_and_cannot_write_it(tmp_path: Path) -> None:
    files = ensure_credentials(tmp_path / "secrets", [ADMIN_USER, "deployments", "monitor"])
    creds = {user: NatsCredentials.read(path) for user, path in files.items()}
    proc, url = start_nats_server(tmp_path / "nats", users=creds.values())

    async def scenario() -> None:
        deployments = await nats.connect(url, **creds["deployments"].connect_options())
        errors: list[str] = []

        async def collect(err: Exception) -> None:
            errors.append(str(err).lower())

        monitor = await nats.connect(url, error_cb=collect, **creds["monitor"].connect_options())
        try:
            await ensure_inference_stream(deployments)
            sink = NatsInferenceSink(deployments, "shop", "fraud")
            await sink.start()
            sink.offer(InferenceSample(request_id="r1", project="shop", model="m", version=1,
                                       features=pd.DataFrame({"x": [1.0]}), prediction=[0], latency_ms=1.0,
                                       status=200, time=1.7e9, deployment="fraud"))
            await sink.close(timeout_s=DEADLINE_S)
            assert [r["request_id"] for r in await read_samples(monitor, "shop", "fraud", 3600, 10)] == ["r1"]
            for subject in (inference_subject("shop", "fraud"), feedback_subject("shop", "fraud"),
                            "cairn.evt.shop.deployment.fraud"):
                await monitor.publish(subject, b"forged")
                await _refused(errors, subject)
        finally:
            await monitor.close()
            await deployments.close()

    try:
        asyncio.run(scenario())
    finally:
        proc.terminate()
        proc.wait(timeout=10)
