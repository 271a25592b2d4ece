"""The inference log's routes (feedback in, sampled requests out) mounted in a service app of
their own, as the deployments service includes them, over a real nats-server: labels stored
exactly once per request id, requests read back with their labels, roles enforced, bad input
refused with what to fix and nothing published."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nats
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from cairn.kernel.identity import Caller
from cairn.kernel.service import create_service_app
from cairn.kernel.settings import ServiceSettings
from cairn.kernel.store import SqliteStore
from cairn.protocol import INFERENCE_STREAM, feedback_subject
from cairn.services.deployments.inference_api import router, start_inference_log
from cairn.serving.inference_log import NatsInferenceSink
from cairn.serving.sink import InferenceSample

from platform_harness import signed_headers

BASE = "/projects/shop/deployments/fraud"
EDITOR = Caller("ed", "t-ed", "user", False, {"shop": "editor"})
VIEWER = Caller("vi", "t-vi", "user", False, {"shop": "viewer"})
OUTSIDER = Caller("out", "t-out", "user", False, {"other": "admin"})


def _app(nats_url: str, data_dir: Path) -> FastAPI:
    settings = ServiceSettings(nats_url=nats_url, data_dir=data_dir)
    return create_service_app(
        "deployments", settings, make_store=lambda s: SqliteStore(s.data_dir / "deployments.sqlite3", ""),
        handler=lambda conn, event: None, routers=[router], on_start=[start_inference_log],
        description="the inference log's routes alone, as the deployments service includes them")


@pytest.fixture()
def client(nats_url: str, tmp_path: Path) -> Iterator[TestClient]:
    with TestClient(_app(nats_url, tmp_path), headers=signed_headers(tmp_path, EDITOR)) as test_client:
        yield test_client


def as_(client: TestClient, caller: Caller) -> dict[str, str]:
    return signed_headers(Path(client.app.state.runtime.settings.data_dir), caller)  # type: ignore[attr-defined]


def stream_messages_on(nats_url: str, subject: str) -> int:
    async def count() -> int:
        nc = await nats.connect(nats_url)
        try:
            info = await nc.jetstream().stream_info(INFERENCE_STREAM, subjects_filter=subject)
            return int((info.state.subjects or {}).get(subject, 0))
        finally:
            await nc.close()

    return asyncio.run(count())


def publish_samples(nats_url: str, count: int) -> None:
    """What a replica of deployment ``fraud`` does: sample every request onto the log."""
    async def run() -> None:
        nc = await nats.connect(nats_url)
        sink = NatsInferenceSink(nc, "shop", "fraud", flush_samples=4)
        await sink.start()
        for i in range(count):
            sink.offer(InferenceSample(request_id=f"r{i}", project="shop", model="fraud-model", version=2,
                                       features=pd.DataFrame({"amount": [10.0 * i], "country": ["fr"]}),
                                       prediction=[i % 2], latency_ms=0.5 + i, status=200, time=1.7e9 + i,
                                       deployment="fraud", replica="rep-a"))
        await sink.close(timeout_s=30)
        assert sink.stats()["published"] == count
        await nc.close()

    asyncio.run(run())


def parquet(table: dict[str, list[Any]]) -> bytes:
    out = io.BytesIO()
    pq.write_table(pa.table(table), out)
    return out.getvalue()


def test_feedback_is_stored_exactly_once_per_request_id(client: TestClient, nats_url: str) -> None:
    first = client.post(f"{BASE}/feedback", json={"labels": [{"request_id": "r1", "label": 1},
                                                             {"request_id": "r2", "label": 0}]})
    assert first.status_code == 200, first.text
    assert first.json() == {"accepted": 2, "duplicates": 0}
    again = client.post(f"{BASE}/feedback", json={"labels": [{"request_id": "r1", "label": 0},
                                                             {"request_id": "r3", "label": 1},
                                                             {"request_id": "r3", "label": 1}]})
    assert again.json() == {"accepted": 1, "duplicates": 2}
    as_parquet = client.post(f"{BASE}/feedback", content=parquet({"request_id": ["r2", "r4"], "label": [1, 1]}),
                             headers={"Content-Type": "application/vnd.apache.parquet"})
    assert as_parquet.status_code == 200, as_parquet.text
    assert as_parquet.json() == {"accepted": 1, "duplicates": 1}
    assert stream_messages_on(nats_url, feedback_subject("shop", "fraud")) == 4


def test_requests_return_what_was_sampled_newest_first_with_labels_joined(client: TestClient,
                                                                          nats_url: str) -> None:
    publish_samples(nats_url, 6)
    posted = client.post(f"{BASE}/feedback", json={"labels": [{"request_id": "r5", "label": 1},
                                                              {"request_id": "r2", "label": "fraud"}]})
    assert posted.status_code == 200, posted.text
    resp = client.get(f"{BASE}/requests", params={"since": "1h", "limit": 4}, headers=as_(client, VIEWER))
    assert resp.status_code == 200, resp.text
    got = resp.json()
    assert got["count"] == 4 and [r["request_id"] for r in got["requests"]] == ["r5", "r4", "r3", "r2"]
    newest = got["requests"][0]
    assert newest["features"] == [{"amount": 50.0, "country": "fr"}] and newest["prediction"] == [1]
    assert (newest["model"], newest["version"], newest["status"], newest["replica"]) == ("fraud-model", 2, 200, "rep-a")
    assert {r["request_id"]: r["label"] for r in got["requests"]} == {"r5": 1, "r4": None, "r3": None, "r2": "fraud"}
    other = client.get("/projects/shop/deployments/other/requests", headers=as_(client, VIEWER))
    assert other.status_code == 200 and other.json() == {"requests": [], "count": 0}


def test_a_viewer_cannot_post_feedback_and_an_outsider_sees_nothing(client: TestClient, nats_url: str) -> None:
    body = {"labels": [{"request_id": "r1", "label": 1}]}
    viewer = client.post(f"{BASE}/feedback", json=body, headers=as_(client, VIEWER))
    assert viewer.status_code == 403 and "editor" in viewer.json()["error"]["message"]
    for call in (lambda h: client.post(f"{BASE}/feedback", json=body, headers=h),
                 lambda h: client.get(f"{BASE}/requests", headers=h)):
        assert call(as_(client, OUTSIDER)).status_code == 404
    assert stream_messages_on(nats_url, feedback_subject("shop", "fraud")) == 0


@pytest.mark.parametrize("kwargs, field", [
    ({"json": {"labels": []}}, "labels"),
    ({"json": {"labels": [{"request_id": "", "label": 1}]}}, "request_id"),
    ({"json": {"labels": [{"request_id": "r1"}]}}, "label"),
    ({"json": {"labels": [{"request_id": "r1", "label": {"nested": 1}}]}}, "label"),
    ({"content": b"{not json", "headers": {"Content-Type": "application/json"}}, "(body)"),
    ({"content": b"x,y", "headers": {"Content-Type": "text/csv"}}, "content-type"),
    ({"content": b"PAR1 not really", "headers": {"Content-Type": "application/vnd.apache.parquet"}}, "Parquet"),
    ({"content": parquet({"request_id": ["r1"], "truth": [1]}),
      "headers": {"Content-Type": "application/vnd.apache.parquet"}}, "label"),
])
def test_bad_feedback_says_what_to_fix_and_publishes_nothing(client: TestClient, nats_url: str,
                                                             kwargs: dict[str, Any], field: str) -> None:
    resp = client.post(f"{BASE}/feedback", **kwargs)
    assert resp.status_code == 422, resp.text
    assert field in resp.text
    assert stream_messages_on(nats_url, feedback_subject("shop", "fraud")) == 0


@pytest.mark.parametrize("params, words", [({"since": "soon"}, "not a duration"), ({"since": "30d"}, "retention"),
                                           ({"since": "0s"}, "above 0"), ({"limit": 0}, "limit"),
                                           ({"limit": 5000}, "limit")])
def test_bad_request_queries_say_what_to_fix(client: TestClient, params: dict[str, Any], words: str) -> None:
    resp = client.get(f"{BASE}/requests", params=params)
    assert resp.status_code == 422 and words in resp.json()["error"]["message"], resp.text


def test_a_deployment_name_that_is_not_a_subject_token_is_refused(client: TestClient) -> None:
    resp = client.post("/projects/shop/deployments/Bad.Name/feedback", json={"labels": [{"request_id": "r", "label": 1}]})
    assert resp.status_code == 422 and "name" in resp.text
