"""The serving app in this process (no platform: ``--public``, models from local package dirs) on
a real socket: one inference sample per answered request, with the request id, version and role
(a shadow's copy included), and the sample rate applied with the seeded RNG."""

from __future__ import annotations

import asyncio
import random
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import loopback
import pytest
from serving_proc import wait_until

from cairn.serving.app import ServeOptions, create_app
from cairn.serving.metrics import Metrics
from cairn.serving.package import open_package, save_model
from cairn.serving.runtime import Runtime
from cairn.serving.serve import deployment_plan
from cairn.serving.sink import InferenceSample

BODY = {"dataframe_split": {"columns": ["x"], "data": [[1.0], [2.0], [3.0]]}}


class ListSink:
    """A real sink that keeps what it is offered (the contract: offer never blocks or raises)."""

    def __init__(self) -> None:
        self.samples: list[InferenceSample] = []

    def offer(self, sample: InferenceSample) -> None:
        self.samples.append(sample)

    async def close(self) -> None:
        return None


def packages(root: Path) -> dict[int, Path]:
    out = {}
    for number in (1, 2):
        module = root / f"src{number}" / "predict.py"
        module.parent.mkdir(parents=True)
        module.write_text(f"def predict(batch):\n    return [x * {number} for x in batch['x']]\n")
        out[number] = save_model(module, root / f"pkg{number}", signature=[{"name": "x", "type": "double"}])
    return out


@pytest.fixture()
def app_url(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[tuple[str, ListSink, ServeOptions]]:
    import uvicorn

    dirs = packages(tmp_path)
    sink = ListSink()
    rate, plan = request.param
    options = ServeOptions(project="local", gateway="http://127.0.0.1:9", public=True, sample_rate=rate,
                           deployment="fraud", replica="r1")
    runtime = Runtime("doubler", lambda v: (open_package(dirs[v]), {"version": v}), Metrics("doubler"),
                      rng=random.Random(42))

    async def startup() -> None:
        assert await runtime.set_versions(*plan)

    app = create_app(runtime, options, sink, on_startup=startup)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=lambda: asyncio.run(server.serve(sockets=[sock])), daemon=True)
    thread.start()
    wait_until(lambda: server.started, deadline_s=30, what="the app to start")
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}", sink, options
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()


@pytest.mark.parametrize("app_url", [(1.0, (1, None, 2))], indirect=True)
def test_every_answered_request_is_offered_with_its_shadow(app_url: tuple[str, ListSink, ServeOptions]) -> None:
    url, sink, _ = app_url
    ids = []
    for n in range(10):
        resp = loopback.post(f"{url}/invocations", json=BODY, headers={"X-Request-Id": f"r{n}"}, timeout=30)
        assert resp.status_code == 200 and resp.json()["predictions"] == [1.0, 2.0, 3.0]
        ids.append(f"r{n}")
    assert loopback.post(f"{url}/invocations", json={"dataframe_split": {"columns": ["y"], "data": [[1]]}},
                      timeout=30).status_code == 422
    wait_until(lambda: len(sink.samples) >= 20, what="primary and shadow samples")
    primary = [s for s in sink.samples if s.role == "primary"]
    shadow = [s for s in sink.samples if s.role == "shadow"]
    assert [s.request_id for s in primary] == ids and sorted(s.request_id for s in shadow) == ids
    assert {s.version for s in primary} == {1} and {s.version for s in shadow} == {2}
    first = primary[0]
    assert first.features["x"].tolist() == [1.0, 2.0, 3.0] and list(first.prediction) == [1.0, 2.0, 3.0]
    assert first.project == "local" and first.deployment == "fraud" and first.replica == "r1" and first.status == 200
    assert list(next(s for s in shadow if s.request_id == "r0").prediction) == [2.0, 4.0, 6.0]


@pytest.mark.parametrize("app_url", [(0.25, (1, None, None))], indirect=True)
def test_sample_rate_offers_a_share(app_url: tuple[str, ListSink, ServeOptions]) -> None:
    url, sink, _ = app_url
    with httpx.Client(base_url=url, timeout=30) as http:
        for _ in range(100):
            assert http.post("/invocations", json=BODY).status_code == 200
    assert 10 <= len(sink.samples) <= 40  # 25% of 100 (sd 4.3) with a seeded RNG, inside the band


def test_deployment_plan_reads_contract_two() -> None:
    config: dict[str, Any] = {"version": 3, "traffic": {"canary": {"version": 4, "percent": 10.0},
                                                        "shadow": {"version": 5}}}
    assert deployment_plan(config) == (3, (4, 10.0), 5)
    assert deployment_plan({"version": 3, "traffic": {"canary": None, "shadow": None}}) == (3, None, None)
