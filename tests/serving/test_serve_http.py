"""``cairn serve`` over HTTP with a scikit-learn model logged through the SDK: both protocols,
auth, input validation (400/413/422 that name what to fix), metrics and adaptive batching."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from serving_proc import Served, serving
from sklearn.linear_model import LogisticRegression

from cairn.sdk.client import Client
from cairn.sdk.run import start_run

pytestmark = pytest.mark.shared_stack

COLUMNS = ["age", "amount", "score"]


@pytest.fixture(scope="module")
def model() -> LogisticRegression:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(200, 3)), columns=COLUMNS)
    return LogisticRegression().fit(frame, (frame["amount"] + frame["score"] > 0).astype(int))


@pytest.fixture(scope="module")
def logged(platform: Any, model: LogisticRegression) -> dict[str, Any]:
    client = Client(platform.gateway, platform.token)
    project = "serve-http"
    with start_run(project, client=client, system_metrics=False, record_environment=False) as run:
        example = pd.DataFrame([[0.1, -0.2, 0.3]], columns=COLUMNS)
        version = run.log_model(model, "fraud", input_example=example)
    assert version["version"] == 1
    client.set_alias(project, "fraud", "production", 1)
    return {"project": project, "client": client}


@pytest.fixture(scope="module")
def served(platform: Any, logged: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    cache = tmp_path_factory.mktemp("cache")
    with serving(platform, cache, "-p", logged["project"], "fraud@production", "--max-body-bytes", "4096",
                 "--max-batch", "64", "--max-wait-ms", "300") as proc:
        yield proc


ROWS = [[0.5, 1.2, -0.3], [-1.0, -0.5, -0.7], [0.0, 2.0, 1.0]]


def test_invocations_speak_mlflow_scoring_protocol(served: Served, model: LogisticRegression) -> None:
    expected = model.predict(pd.DataFrame(ROWS, columns=COLUMNS)).tolist()
    records = [dict(zip(COLUMNS, r, strict=True)) for r in ROWS]
    bodies = [{"dataframe_split": {"columns": COLUMNS, "data": ROWS}}, {"dataframe_records": records},
              {"instances": records}, {"inputs": {c: [r[i] for r in ROWS] for i, c in enumerate(COLUMNS)}}]
    with served.client() as http:
        for body in bodies:
            resp = http.post("/invocations", json=body, headers={"X-Request-Id": "req-1"})
            assert resp.status_code == 200, resp.text
            assert resp.json() == {"predictions": expected}
            assert resp.headers["X-Request-Id"] == "req-1" and resp.headers["X-Model-Version"] == "1"
        csv = "age,amount,score\n" + "\n".join(",".join(map(str, r)) for r in ROWS)
        resp = http.post("/invocations", content=csv, headers={"Content-Type": "text/csv"})
        assert resp.status_code == 200 and resp.json() == {"predictions": expected}
        assert resp.headers["X-Request-Id"]


def test_open_inference_protocol(served: Served, model: LogisticRegression) -> None:
    expected = model.predict(pd.DataFrame(ROWS, columns=COLUMNS)).tolist()
    with served.client() as http:
        meta = http.get("/v2/models/fraud").json()
        assert meta["name"] == "fraud" and meta["versions"] == ["1"]
        assert [i["name"] for i in meta["inputs"]] == COLUMNS
        one_tensor = {"id": "abc", "inputs": [{"name": "x", "shape": [3, 3], "datatype": "FP64",
                                               "data": [v for r in ROWS for v in r]}]}
        resp = http.post("/v2/models/fraud/infer", json=one_tensor)
        assert resp.status_code == 200, resp.text
        out = resp.json()
        assert out["model_name"] == "fraud" and out["model_version"] == "1" and out["id"] == "abc"
        assert out["outputs"][0]["data"] == expected and out["outputs"][0]["shape"] == [3]
        per_column = {"inputs": [{"name": c, "shape": [3], "datatype": "FP32", "data": [r[i] for r in ROWS]}
                                 for i, c in enumerate(COLUMNS)]}
        assert http.post("/v2/models/fraud/infer", json=per_column).json()["outputs"][0]["data"] == expected
        assert http.post("/v2/models/other/infer", json=per_column).status_code == 404


def test_tokens_are_checked(served: Served, platform: Any) -> None:
    body = {"dataframe_split": {"columns": COLUMNS, "data": ROWS}}
    resp = httpx_post(served.url + "/invocations", body, {})
    assert resp.status_code == 401 and "Bearer" in resp.json()["error"]["message"]
    resp = httpx_post(served.url + "/invocations", body, {"Authorization": "Bearer not-a-token"})
    assert resp.status_code == 401
    outsider = Client(platform.gateway, platform.token).create_token("serve-outsider")["token"]
    resp = httpx_post(served.url + "/invocations", body, {"Authorization": f"Bearer {outsider}"})
    assert resp.status_code == 403 and "serve-http" in resp.json()["error"]["message"]


def httpx_post(url: str, body: Any, headers: dict[str, str]) -> Any:
    import loopback

    return loopback.post(url, json=body, headers=headers, timeout=30)


@pytest.mark.parametrize(("body", "status", "needle"), [
    ({"dataframe_split": {"columns": ["age", "amount", "wrong"], "data": [[1, 2, 3]]}}, 422, "'score'"),
    ({"dataframe_records": [{"age": 1, "amount": "lots", "score": 3}]}, 422, "'amount'"),
    ({"dataframe_split": {"columns": ["age", "amount", "score", "extra"], "data": [[1, 2, 3, 4]]}}, 422, "'extra'"),
    ({"instances": [[1.0, 2.0]]}, 422, "3 columns"),
    ({"nothing": 1}, 400, "dataframe_split"),
    ({"dataframe_split": {"columns": COLUMNS, "data": []}}, 400, "non-empty"),
])
def test_bad_bodies_get_4xx_naming_the_problem(served: Served, body: Any, status: int, needle: str) -> None:
    with served.client() as http:
        resp = http.post("/invocations", json=body)
    assert resp.status_code == status, resp.text
    assert needle in resp.json()["error"]["message"]


def test_malformed_and_oversized_bodies(served: Served) -> None:
    with served.client() as http:
        resp = http.post("/invocations", content=b"{not json", headers={"Content-Type": "application/json"})
        assert resp.status_code == 400 and "JSON" in resp.json()["error"]["message"]
        resp = http.post("/v2/models/fraud/infer", json={"inputs": [{"name": "x", "shape": [2, 3],
                                                                     "datatype": "FP64", "data": [1, 2]}]})
        assert resp.status_code == 400 and "shape" in resp.json()["error"]
        big = {"dataframe_split": {"columns": COLUMNS, "data": [[0.5, 0.5, 0.5]] * 400}}
        resp = http.post("/invocations", json=big)
        assert resp.status_code == 413 and "--max-body-bytes" in resp.json()["error"]["message"]
        assert http.post("/invocations", json={"dataframe_split": {"columns": COLUMNS, "data": ROWS}}).status_code == 200


def test_batching_groups_concurrent_requests(served: Served, model: LogisticRegression) -> None:
    before = served.metric("cairn_serve_batch_calls_total")
    rows = np.random.default_rng(1).normal(size=(32, 3)).round(3).tolist()
    expected = model.predict(pd.DataFrame(rows, columns=COLUMNS)).tolist()

    def call(row: list[float]) -> Any:
        with served.client() as http:
            resp = http.post("/invocations", json={"dataframe_split": {"columns": COLUMNS, "data": [row]}})
            assert resp.status_code == 200
            return resp.json()["predictions"][0]

    with ThreadPoolExecutor(32) as pool:
        answers = list(pool.map(call, rows))
    assert answers == expected  # each request got its own rows' answers back
    calls = served.metric("cairn_serve_batch_calls_total") - before
    assert calls < 32  # fewer model calls than requests: some calls answered several requests
    text = served.client().get("/metrics").text
    grouped = [line for line in text.splitlines() if line.startswith("cairn_serve_batch_calls_total")
               and 'requests="1"' not in line]
    assert grouped, text


def test_health_ready_metrics(served: Served) -> None:
    with served.client() as http:
        assert http.get("/healthz").json()["status"] == "ok"
        ready = http.get("/readyz").json()
        assert ready["ready"] is True and ready["version"] == 1
    assert served.metric("cairn_serve_requests_total", status="200") > 0
    assert served.metric("cairn_serve_requests_total", status="422") > 0
    assert served.metric("cairn_serve_loaded_version", role="primary", version="1") == 1
    assert served.metric("cairn_serve_latency_seconds_count") > 0


def test_sdk_load_model_uses_a_digest_cache(logged: dict[str, Any], model: LogisticRegression, tmp_path: Path) -> None:
    loaded = logged["client"].load_model(logged["project"], "fraud@production", cache_dir=tmp_path)
    frame = pd.DataFrame(ROWS, columns=COLUMNS)
    assert loaded.predict(frame) == model.predict(frame).tolist()
    assert len([p for p in tmp_path.iterdir() if not p.name.startswith(".")]) == 1


def test_token_answers_are_cached_until_the_ttl(platform: Any, logged: dict[str, Any]) -> None:
    """Against the real gateway, with time mocked: a revoked token works until its cached answer
    expires (30 s), then gets a 401."""
    import asyncio

    from cairn.kernel.errors import Unauthorized
    from cairn.serving.app import Authenticator

    admin = Client(platform.gateway, platform.token)
    admin.add_member(logged["project"], "serve-cache-user", "viewer")
    minted = admin.create_token("serve-cache-user")
    now = [1000.0]
    auth = Authenticator(platform.gateway, logged["project"], 30.0, clock=lambda: now[0])

    async def scenario() -> None:
        header = f"Bearer {minted['token']}"
        await auth.check(header)
        admin.revoke_token(minted["token_id"])
        now[0] += 29.0
        await auth.check(header)  # still cached
        now[0] += 2.0
        with pytest.raises(Unauthorized):
            await auth.check(header)
        await auth.http.aclose()

    asyncio.run(scenario())


def test_request_ids_are_echoed_only_when_sane(served: Served) -> None:
    body = {"dataframe_split": {"columns": COLUMNS, "data": ROWS}}
    with served.client() as http:
        assert http.post("/invocations", json=body, headers={"X-Request-Id": "a" * 129}).headers["X-Request-Id"] \
            != "a" * 129
        assert http.post("/invocations", json=body, headers={"X-Request-Id": "ok-1.2:3"}).headers[
            "X-Request-Id"] == "ok-1.2:3"
