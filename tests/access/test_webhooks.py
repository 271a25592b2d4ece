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
    """A real HTTP server that fails the first ``fail`` deliveries, then accepts (``delay_s`` each)."""

    def __init__(self, fail: int, delay_s: float = 0.0) -> None:
        self.fail = fail
        self.received: list[tuple[dict, bytes, dict]] = []
        self.attempts = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers["Content-Length"]))
                time.sleep(delay_s)
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


# --- the dispatcher reads only what it can deliver -----------------------------------------------

WEBHOOK_EVENTS = "cairn.evt.*.webhook.>"


def _consumer(platform: Platform):  # type: ignore[no-untyped-def]
    """The gateway's webhook consumer as nats-server has it (rebinding deletes and creates it)."""
    import asyncio

    import nats
    from nats.js.errors import NotFoundError

    async def read():  # type: ignore[no-untyped-def]
        nc = await nats.connect(platform.nats_url)
        try:
            for _ in range(100):
                try:
                    return await nc.jetstream().consumer_info("CAIRN_EVENTS", "webhooks")
                except NotFoundError:
                    await asyncio.sleep(0.05)
            raise AssertionError("no webhooks consumer")
        finally:
            await nc.close()

    return asyncio.run(read())


def _filter(platform: Platform) -> list[str]:
    return list(_consumer(platform).config.filter_subjects or [])


def _runs(receiver: Receiver) -> list[tuple[str, int]]:
    return [(e["aggregate_id"], e["sequence"]) for e, _, _ in receiver.received if e["type"] == "run.created"]


def test_consumer_reads_only_projects_with_live_webhooks(platform: Platform, admin: httpx.Client) -> None:
    a, b = Receiver(fail=0), Receiver(fail=0)
    try:
        for name in ("filt-a", "filt-b"):
            admin.post("/registry/projects", json={"name": name}).raise_for_status()
        hook_a = admin.post("/projects/filt-a/webhooks", json={"url": a.url, "types": ["run.*"]}).json()
        _wait(lambda: "cairn.evt.filt-a.>" in _filter(platform))
        assert WEBHOOK_EVENTS in _filter(platform) and "cairn.evt.filt-b.>" not in _filter(platform)

        admin.post("/registry/projects/filt-b/runs", json={"name": "before-hook"}).raise_for_status()
        run_a = admin.post("/registry/projects/filt-a/runs", json={"name": "r"}).json()
        _wait(lambda: len(_runs(a)) == 1)
        assert _runs(a)[0][0] == run_a["id"]

        admin.post("/projects/filt-b/webhooks", json={"url": b.url, "types": ["run.*"]}).raise_for_status()
        _wait(lambda: "cairn.evt.filt-b.>" in _filter(platform))
        run_b = admin.post("/registry/projects/filt-b/runs", json={"name": "after-hook"}).json()
        _wait(lambda: len(_runs(b)) == 1)
        assert _runs(b)[0][0] == run_b["id"]  # not the run from before the webhook

        admin.delete(f"/projects/filt-a/webhooks/{hook_a['id']}").raise_for_status()
        _wait(lambda: "cairn.evt.filt-a.>" not in _filter(platform))
        assert "cairn.evt.filt-b.>" in _filter(platform)
        admin.post("/registry/projects/filt-a/runs", json={"name": "after-delete"}).raise_for_status()
        admin.post("/registry/projects/filt-b/runs", json={"name": "marker"}).raise_for_status()
        _wait(lambda: len(_runs(b)) == 2)  # delivered in log order: A's run was passed over before it
        assert [run for run, _ in _runs(a)] == [run_a["id"]]
    finally:
        a.close()
        b.close()


def test_new_project_mid_stream_neither_loses_nor_repeats(platform: Platform, admin: httpx.Client) -> None:
    # A slow receiver keeps the dispatcher behind, so the new project's webhook.created arrives in
    # the middle of a batch of the busy project's events: the consumer is bound again from there.
    busy, joined = Receiver(fail=0, delay_s=0.3), Receiver(fail=0)
    try:
        for name in ("filt-busy", "filt-join"):
            admin.post("/registry/projects", json={"name": name}).raise_for_status()
        admin.post("/projects/filt-busy/webhooks", json={"url": busy.url, "types": ["run.*"]}).raise_for_status()

        def run(project: str, name: str) -> str:
            return admin.post(f"/registry/projects/{project}/runs", json={"name": name}).json()["id"]

        busy_runs = [run("filt-busy", f"b{i}") for i in range(4)]
        admin.post("/projects/filt-join/webhooks", json={"url": joined.url, "types": ["run.*"]}).raise_for_status()
        joined_runs = []
        for i in range(4):
            busy_runs.append(run("filt-busy", f"b{i + 4}"))
            joined_runs.append(run("filt-join", f"j{i}"))
        _wait(lambda: len(_runs(busy)) >= len(busy_runs) and len(_runs(joined)) >= len(joined_runs))
        time.sleep(0.5)  # anything delivered twice would arrive by now
        for receiver, runs in ((busy, busy_runs), (joined, joined_runs)):
            assert [run for run, _ in _runs(receiver)] == runs  # each once, in log order
    finally:
        busy.close()
        joined.close()


def test_gateway_restart_keeps_the_filter_and_repeats_nothing(platform: Platform, admin: httpx.Client) -> None:
    receiver = Receiver(fail=0)
    try:
        admin.post("/registry/projects", json={"name": "filt-restart"}).raise_for_status()
        admin.post("/projects/filt-restart/webhooks", json={"url": receiver.url, "types": ["run.*"]}).raise_for_status()
        _wait(lambda: "cairn.evt.filt-restart.>" in _filter(platform))
        first = admin.post("/registry/projects/filt-restart/runs", json={"name": "r1"}).json()
        _wait(lambda: len(_runs(receiver)) == 1)
        _wait(lambda: _consumer_settled(platform))  # the delivery's position is committed
        before = _filter(platform)

        platform.restart("gateway")  # SIGKILL
        platform.wait_healthy()
        assert _filter(platform) == before
        second = admin.post("/registry/projects/filt-restart/runs", json={"name": "r2"}).json()
        _wait(lambda: len(_runs(receiver)) >= 2)
        time.sleep(0.5)
        assert [run for run, _ in _runs(receiver)] == [first["id"], second["id"]]
    finally:
        receiver.close()


def _consumer_settled(platform: Platform) -> bool:
    """Nothing pending and nothing unacknowledged (acks follow the position's commit)."""
    info = _consumer(platform)
    return info.num_pending == 0 and info.num_ack_pending == 0
