"""Versions and traffic in a real ``cairn serve``: following an alias with no failed request, a
version that fails to load leaving the old one serving, a seeded canary split, and a shadow that
gets a copy of every request. The models are plain Python ``predict(batch)`` modules that answer
their own version number, so every answer says which version made it."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import loopback
import pytest
from serving_proc import log_answer_versions, run_serve_cli, serving, wait_until

from cairn.sdk.client import Client

pytestmark = pytest.mark.shared_stack

PROJECT = "serve-versions"
BODY = {"dataframe_split": {"columns": ["x"], "data": [[1.0], [2.0]]}}


@pytest.fixture(scope="module")
def client(platform: Any, tmp_path_factory: pytest.TempPathFactory) -> Client:
    """Model ``answer``: versions 1 and 2 answer their number; version 3 cannot be imported."""
    client = Client(platform.gateway, platform.token)
    log_answer_versions(client, PROJECT, tmp_path_factory.mktemp("models"), broken=True)
    client.set_alias(PROJECT, "answer", "production", 1)
    return client


def test_follow_switches_with_no_failed_request(platform: Any, client: Client, tmp_path: Path) -> None:
    client.set_alias(PROJECT, "answer", "production", 1)
    with serving(platform, tmp_path, "-p", PROJECT, "answer@production", "--follow", "--poll-s", "0.2") as served:
        seen: list[tuple[int, str, list[int]]] = []
        stop = threading.Event()

        def loop() -> None:
            with served.client() as http:
                while not stop.is_set():
                    resp = http.post("/invocations", json=BODY)
                    seen.append((resp.status_code, resp.headers.get("X-Model-Version", ""),
                                 resp.json().get("predictions", [])))

        worker = threading.Thread(target=loop)
        worker.start()
        try:
            wait_until(lambda: len(seen) > 20, what="requests on version 1")
            client.set_alias(PROJECT, "answer", "production", 2)
            wait_until(lambda: any(v == "2" for _, v, _ in seen), what="the switch to version 2")
            count = len(seen)
            wait_until(lambda: len(seen) > count + 20, what="requests after the switch")
        finally:
            stop.set()
            worker.join(timeout=60)
        assert all(status == 200 for status, _, _ in seen), [s for s in seen if s[0] != 200][:3]
        versions = [v for _, v, _ in seen]
        switch = versions.index("2")
        assert set(versions[:switch]) == {"1"} and set(versions[switch:]) == {"2"}  # one clean switch
        assert all(preds == [int(v)] * 2 for _, v, preds in seen)  # each answer from the version it names

        # a version that cannot load: the old one keeps serving and says why in /readyz
        client.set_alias(PROJECT, "answer", "production", 3)
        ready = wait_until(lambda: (r := loopback.get(f"{served.url}/readyz", timeout=10).json())["last_error"] and r,
                           what="the failed load to show in /readyz")
        assert "version 3" in ready["last_error"] and "broken on purpose" in ready["last_error"]
        assert ready["version"] == 2
        with served.client() as http:
            resp = http.post("/invocations", json=BODY)
        assert resp.status_code == 200 and resp.headers["X-Model-Version"] == "2"


# The router draws from a seeded generator (--seed), so the canary's count over these requests is
# the same every run: 500 show the split as well as more would (one draw per request, in any order).
REQUESTS = 500


def test_canary_share_is_within_five_points(platform: Any, client: Client, tmp_path: Path) -> None:
    with serving(platform, tmp_path, "-p", PROJECT, "answer/1", "--canary", "2:20", "--seed", "1234") as served:
        versions: dict[str, int] = {"1": 0, "2": 0}
        with served.client() as http:  # httpx.Client is thread-safe: 8 callers share its pool

            def call(_: int) -> str:
                resp = http.post("/invocations", json=BODY)
                assert resp.status_code == 200
                version = resp.headers["X-Model-Version"]
                assert resp.json()["predictions"] == [int(version)] * 2
                return str(version)

            with ThreadPoolExecutor(8) as pool:
                for version in pool.map(call, range(REQUESTS)):
                    versions[version] += 1
        share = versions["2"] / REQUESTS * 100
        assert 15.0 <= share <= 25.0, versions
        assert served.metric("cairn_serve_loaded_version", role="canary", version="2") == 1


def test_shadow_gets_a_copy_and_its_answer_is_discarded(platform: Any, client: Client, tmp_path: Path) -> None:
    with serving(platform, tmp_path, "-p", PROJECT, "answer/1", "--shadow", "2") as served:
        with served.client() as http:
            for _ in range(50):
                resp = http.post("/invocations", json=BODY)
                assert resp.status_code == 200 and resp.json()["predictions"] == [1, 1]
                assert resp.headers["X-Model-Version"] == "1"
        wait_until(lambda: served.metric("cairn_serve_requests_total", role="shadow", status="200") == 50,
                   what="50 shadow copies")
        assert served.metric("cairn_serve_requests_total", role="primary", status="200") == 50


def test_a_version_that_cannot_load_stops_serve_with_the_reason(platform: Any, client: Client, tmp_path: Path) -> None:
    proc = run_serve_cli(platform, tmp_path, "-p", PROJECT, "answer/3")
    assert proc.returncode != 0
    assert "answer version 3 cannot be served" in proc.stderr and "broken on purpose" in proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
