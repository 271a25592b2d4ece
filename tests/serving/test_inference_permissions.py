"""Only the deployments service reaches the inference log over NATS: the agents' user (which
serving replicas never see: they relay samples over HTTP) can neither publish samples, read them
back, post labels, nor reach the stream's API. Checked on a real nats-server with Cairn's users."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import nats
import pandas as pd
import pytest

from cairn.kernel.natsauth import (
    ADMIN_USER,
    AGENT_INBOX_PREFIX,
    AGENT_USER,
    NatsCredentials,
    ensure_credentials,
)
from cairn.natsserver import start_nats_server
from cairn.protocol import INFERENCE_STREAM, feedback_subject, inference_subject
from cairn.serving.inference_log import NatsInferenceSink, ensure_inference_stream, read_samples
from cairn.serving.sink import InferenceSample

DEADLINE_S = 10.0


@pytest.fixture()
def users(tmp_path: Path) -> Iterator[tuple[str, dict[str, NatsCredentials]]]:
    files = ensure_credentials(tmp_path / "secrets", [ADMIN_USER, AGENT_USER, "deployments"])
    creds = {user: NatsCredentials.read(path) for user, path in files.items()}
    proc, url = start_nats_server(tmp_path / "nats", users=creds.values())
    try:
        yield url, creds
    finally:
        proc.terminate()
        proc.wait(timeout=10)


async def _refused(errors: list[str], subject: str, what: str) -> None:
    expected = f'permissions violation for {what} to "{subject}"'
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DEADLINE_S
    while not any(expected in err for err in errors):
        assert loop.time() < deadline, f"no permission error for {what} {subject}: {errors}"
        await asyncio.sleep(0.02)


async def test_only_the_deployments_service_reaches_the_inference_log(
        users: tuple[str, dict[str, NatsCredentials]]) -> None:
    url, creds = users
    service = await nats.connect(url, **creds["deployments"].connect_options())
    await ensure_inference_stream(service)  # the deployments service makes the stream
    errors: list[str] = []

    async def collect(err: Exception) -> None:
        errors.append(str(err).lower())

    agent = await nats.connect(url, inbox_prefix=AGENT_INBOX_PREFIX, error_cb=collect, max_reconnect_attempts=0,
                               **creds[AGENT_USER].connect_options())
    try:
        sink = NatsInferenceSink(service, "shop", "fraud")  # the service's user may publish
        await sink.start()
        sink.offer(InferenceSample(request_id="r1", project="shop", model="m", version=1,
                                   features=pd.DataFrame({"x": [1.0]}), prediction=[0], latency_ms=1.0,
                                   status=200, time=1.7e9, deployment="fraud"))
        await sink.close(timeout_s=DEADLINE_S)
        assert sink.stats()["published"] == 1
        assert [r["request_id"] for r in await read_samples(service, "shop", "fraud", 3600, 10)] == ["r1"]

        await agent.publish(inference_subject("shop", "fraud"), b"forged")
        await _refused(errors, inference_subject("shop", "fraud"), "publish")
        await agent.subscribe("cairn.inference.>")
        await _refused(errors, "cairn.inference.>", "subscription")
        await agent.publish(feedback_subject("shop", "fraud"), b'{"request_id": "r1", "label": 1}')
        await _refused(errors, feedback_subject("shop", "fraud"), "publish")
        await agent.publish(f"$JS.API.CONSUMER.CREATE.{INFERENCE_STREAM}", b"{}")
        await _refused(errors, f"$js.api.consumer.create.{INFERENCE_STREAM.lower()}", "publish")
        await agent.flush()
        info = await service.jetstream().stream_info(INFERENCE_STREAM, subjects_filter="cairn.>")
        assert info.state.subjects == {inference_subject("shop", "fraud"): 1}
    finally:
        await agent.close()
        await service.close()
