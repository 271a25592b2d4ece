"""Webhooks: signed deliveries, retries, dead letters and replay, SSRF refusal."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from cairn.kernel.errors import InvalidInput
from cairn.services.gateway.webhooks import check_url, verify

from platform_harness import Platform


class Receiver:
    """A real HTTP server that fails the first ``fail`` deliveries, then accepts."""

    def __init__(self, fail: int) -> None:
        self.fail = fail
        self.received: list[tuple[dict, bytes, dict]] = []
        self.attempts = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.attempts += 1
                if receiver.fail > 0:
                    receiver.fail -= 1
                    self.send_response(500)
                else:
                    receiver.received.append((json.loads(body), body, dict(self.headers)))
                    self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"

    def close(self) -> None:
        self.server.shutdown()


def _wait(predicate, timeout: float = 20.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


@pytest.fixture()
def admin(platform: Platform) -> httpx.Client:
    client = httpx.Client(base_url=f"{platform.gateway}/api/v1", headers=platform.headers, timeout=30)
    return client


def test_delivery_after_three_failures_arrives_once_signed(platform: Platform, admin: httpx.Client) -> None:
    receiver = Receiver(fail=3)
    try:
        admin.post("/registry/projects", json={"name": "hooked"}).raise_for_status()
        hook = admin.post("/projects/hooked/webhooks", json={"url": receiver.url, "types": ["run.*"]}).json()
        run = admin.post("/registry/projects/hooked/runs", json={"name": "r"}).json()
        _wait(lambda: len(receiver.received) == 1)
        time.sleep(0.5)
        assert len(receiver.received) == 1 and receiver.attempts == 4
        event, body, headers = receiver.received[0]
        assert (event["type"], event["aggregate_id"]) == ("run.created", run["id"])
        assert verify(hook["secret"], body, headers["Cairn-Signature"])
        assert not verify("wrong-secret", body, headers["Cairn-Signature"])
        assert not verify(hook["secret"], body, headers["Cairn-Signature"], now=time.time() + 3600)
        assert headers["Cairn-Delivery"] == f"{hook['id']}:{event['sequence']}"
        assert "secret" not in admin.get("/projects/hooked/webhooks").json()["webhooks"][0]
    finally:
        receiver.close()


def test_always_failing_receiver_ends_in_dead_letters_and_replay_delivers(platform: Platform,
                                                                         admin: httpx.Client) -> None:
    receiver = Receiver(fail=4)  # the platform's tests try 4 times
    try:
        admin.post("/registry/projects", json={"name": "deadly"}).raise_for_status()
        hook = admin.post("/projects/deadly/webhooks", json={"url": receiver.url, "types": ["experiment.*"]}).json()
        admin.post("/registry/projects/deadly/experiments", json={"name": "e1"}).raise_for_status()
        letters = f"/projects/deadly/webhooks/{hook['id']}/dead-letters"
        _wait(lambda: len(admin.get(letters).json()["dead_letters"]) == 1)
        assert receiver.received == [] and receiver.attempts == 4
        assert "HTTP 500" in admin.get(letters).json()["dead_letters"][0]["error"]
        replay = admin.post(f"/projects/deadly/webhooks/{hook['id']}/replay").json()
        assert len(replay["replaying"]) == 1
        _wait(lambda: len(receiver.received) == 1)
        assert receiver.received[0][0]["type"] == "experiment.created"
        assert admin.get(letters).json()["dead_letters"] == []
    finally:
        receiver.close()


def test_private_targets_are_refused_unless_allowed() -> None:
    for url in ("http://127.0.0.1/x", "http://10.1.2.3/x", "http://192.168.1.1/x", "http://169.254.169.254/x",
                "http://localhost/x", "ftp://example.com/x", "not a url"):
        with pytest.raises(InvalidInput):
            check_url(url, allow_private=False)
    assert check_url("http://127.0.0.1/x", allow_private=True) == "http://127.0.0.1/x"


def test_bad_webhook_input_is_422(admin: httpx.Client) -> None:
    admin.post("/registry/projects", json={"name": "hook-bad"}).raise_for_status()
    assert admin.post("/projects/hook-bad/webhooks", json={"url": "ftp://x/y", "types": ["run.*"]}).status_code == 422
    assert admin.post("/projects/hook-bad/webhooks", json={"url": "http://x/y", "types": []}).status_code == 422
