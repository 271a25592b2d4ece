"""Webhooks: signed deliveries, retries, dead letters and replay; per-webhook queues (a silent
receiver delays only itself); exactly one delivery per event per attempt, each attempt in the
bounded deliveries log; names looked up once
per attempt. The address guard has its own module (test_webhook_guard.py)."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest
from webhook_receivers import Receiver, Silent, wait_until

from cairn.kernel.store import SqliteStore
from cairn.services.gateway.deliveries import OUTBOX_SCHEMA, Attempt, Delivery, drop, record
from cairn.services.gateway.webhooks import verify

from platform_harness import Platform


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
        wait_until(lambda: len(receiver.received) == 1)
        wait_until(lambda: _settled(platform, admin, "hooked"), what="the webhook's queue to empty")
        assert len(receiver.received) == 1 and receiver.attempts == 4
        assert [h["Cairn-Delivery-Attempt"] for _, _, h in receiver.requests] == ["1", "2", "3", "4"]
        event, body, headers = receiver.received[0]
        assert (event["type"], event["aggregate_id"]) == ("run.created", run["id"])
        assert verify(hook["secret"], body, headers["Cairn-Signature"])
        assert not verify("wrong-secret", body, headers["Cairn-Signature"])
        assert not verify(hook["secret"], body, headers["Cairn-Signature"], now=time.time() + 3600)
        assert headers["Cairn-Delivery"] == f"{hook['id']}:{event['sequence']}"
        assert headers["Host"] == f"127.0.0.1:{receiver.port}"
        listed = admin.get("/projects/hooked/webhooks").json()["webhooks"][0]
        assert "secret" not in listed and listed["pending"] == 0
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
        wait_until(lambda: len(admin.get(letters).json()["dead_letters"]) == 1)
        assert receiver.received == [] and receiver.attempts == 4
        assert "HTTP 500" in admin.get(letters).json()["dead_letters"][0]["error"]
        replay = admin.post(f"/projects/deadly/webhooks/{hook['id']}/replay").json()
        assert len(replay["replaying"]) == 1
        wait_until(lambda: len(receiver.received) == 1)
        assert receiver.received[0][0]["type"] == "experiment.created"
        assert admin.get(letters).json()["dead_letters"] == []
    finally:
        receiver.close()


def test_every_attempt_is_in_the_deliveries_log_newest_first(platform: Platform, admin: httpx.Client) -> None:
    receiver = Receiver(fail=2)
    try:
        admin.post("/registry/projects", json={"name": "hook-log"}).raise_for_status()
        hook = admin.post("/projects/hook-log/webhooks", json={"url": receiver.url, "types": ["run.*"]}).json()
        run = admin.post("/registry/projects/hook-log/runs", json={"name": "r"}).json()
        url = f"/projects/hook-log/webhooks/{hook['id']}/deliveries"
        wait_until(lambda: len(admin.get(url).json()["deliveries"]) == 3, what="three recorded attempts")
        rows = admin.get(url).json()["deliveries"]
        assert [(r["attempt"], r["status"], r["outcome"]) for r in rows] == [
            (3, 204, "delivered"), (2, 500, "retrying"), (1, 500, "retrying")]
        assert {(r["event_type"], r["sequence"]) for r in rows} == {("run.created", receiver.received[0][0]["sequence"])}
        assert receiver.received[0][0]["aggregate_id"] == run["id"]
        assert rows[0]["error"] == "" and rows[0]["next_retry_at"] is None
        assert rows[1]["error"] == "HTTP 500" and rows[1]["next_retry_at"] > rows[1]["time"]
        assert all(r["duration_ms"] >= 0 and r["time"].endswith("Z") for r in rows)
        first = admin.get(url, params={"limit": 2}).json()
        assert [r["attempt"] for r in first["deliveries"]] == [3, 2]
        rest = admin.get(url, params={"limit": 2, "before": first["next_before"]}).json()
        assert [r["attempt"] for r in rest["deliveries"]] == [1] and rest["next_before"] is None
        for bad in ({"limit": 0}, {"limit": 201}, {"before": 0}, {"before": "x"}):
            assert admin.get(url, params=bad).status_code == 422, bad
        missing = admin.get("/projects/hook-log/webhooks/zz0none/deliveries")
        assert missing.status_code == 404 and "zz0none" in missing.json()["error"]["message"]
        admin.delete(f"/projects/hook-log/webhooks/{hook['id']}").raise_for_status()
        assert admin.get(url).status_code == 404
    finally:
        receiver.close()


def test_the_deliveries_log_keeps_the_newest_attempts_per_webhook(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "outbox.sqlite3", OUTBOX_SCHEMA)
    try:
        for webhook, count in (("a", 7), ("b", 2)):
            for n in range(1, count + 1):
                with store.transaction() as conn:
                    record(conn, Attempt(Delivery(webhook, n, "run.created", b"{}"), 1, f"t{n}", 204, "", 1.0,
                                         "delivered"), keep=3)
        rows = store.query("SELECT webhook_id, sequence FROM deliveries ORDER BY id")
        assert [(r["webhook_id"], r["sequence"]) for r in rows] == [("a", 5), ("a", 6), ("a", 7), ("b", 1), ("b", 2)]
        with store.transaction() as conn:
            drop(conn, "a")
        assert [r["webhook_id"] for r in store.query("SELECT webhook_id FROM deliveries")] == ["b", "b"]
    finally:
        store.close()


def test_a_name_is_looked_up_and_the_request_goes_to_its_address(platform: Platform, admin: httpx.Client) -> None:
    # The platform allows loopback receivers (CAIRN_WEBHOOKS_ALLOW_PRIVATE), but a name still takes
    # the same path: one lookup (here the system's resolver, /etc/hosts), a connection to a checked
    # address (::1 first where localhost has it: refused, so the next address of the same lookup),
    # and the name in the Host header.
    receiver = Receiver()
    try:
        admin.post("/registry/projects", json={"name": "hook-name"}).raise_for_status()
        url = f"http://localhost:{receiver.port}/hook"
        admin.post("/projects/hook-name/webhooks", json={"url": url, "types": ["run.*"]}).raise_for_status()
        run = admin.post("/registry/projects/hook-name/runs", json={"name": "r"}).json()
        wait_until(lambda: len(receiver.received) == 1)
        event, _, headers = receiver.received[0]
        assert event["aggregate_id"] == run["id"] and headers["Host"] == f"localhost:{receiver.port}"
    finally:
        receiver.close()


def test_bad_webhook_input_is_422(admin: httpx.Client) -> None:
    admin.post("/registry/projects", json={"name": "hook-bad"}).raise_for_status()
    for url in ("ftp://x/y", "not a url", "http://127.1/x", "http://2130706433/x"):
        resp = admin.post("/projects/hook-bad/webhooks", json={"url": url, "types": ["run.*"]})
        assert resp.status_code == 422, url
        assert "url" in resp.json()["error"]["message"]
    assert admin.post("/projects/hook-bad/webhooks", json={"url": "http://x/y", "types": []}).status_code == 422
    assert admin.get("/projects/hook-bad/webhooks").json()["webhooks"] == []


# --- one queue per webhook, one delivery per event per attempt -----------------------------------

def test_a_silent_receiver_delays_only_its_own_webhook(platform: Platform, admin: httpx.Client) -> None:
    """A receiver that accepts and never answers holds its webhook's queue for attempts x timeout
    (4 x 10 s here); another webhook of the same project and another project's webhook get their
    deliveries while that first delivery is still pending."""
    silent, neighbour, other = Silent(), Receiver(), Receiver()
    try:
        for name in ("hol-a", "hol-b"):
            admin.post("/registry/projects", json={"name": name}).raise_for_status()
        stuck = admin.post("/projects/hol-a/webhooks", json={"url": silent.url, "types": ["run.*"]}).json()
        admin.post("/projects/hol-a/webhooks", json={"url": neighbour.url, "types": ["run.*"]}).raise_for_status()
        admin.post("/projects/hol-b/webhooks", json={"url": other.url, "types": ["run.*"]}).raise_for_status()
        first = admin.post("/registry/projects/hol-a/runs", json={"name": "a0"}).json()
        wait_until(lambda: silent.accepted, what="the silent receiver to have a delivery in flight")

        a_runs = [first["id"]] + [admin.post("/registry/projects/hol-a/runs", json={"name": f"a{i}"}).json()["id"]
                                  for i in range(1, 3)]
        b_runs = [admin.post("/registry/projects/hol-b/runs", json={"name": f"b{i}"}).json()["id"]
                  for i in range(3)]
        wait_until(lambda: len(_runs(neighbour)) == 3 and len(_runs(other)) == 3, timeout=20,
                   what="the other webhooks' deliveries")
        assert _pending(admin, "hol-a", stuck["id"]) == 3  # still trying the first, the rest queued behind it
        assert [run for run, _ in _runs(neighbour)] == a_runs
        assert [run for run, _ in _runs(other)] == b_runs
    finally:
        admin.delete(f"/projects/hol-a/webhooks/{stuck['id']}")  # its worker stops after the attempt
        silent.close()
        neighbour.close()
        other.close()


def test_each_delivery_is_sent_once_per_attempt(platform: Platform, admin: httpx.Client) -> None:
    """Every delivery's first attempt fails and its second succeeds: each delivery id arrives
    exactly twice, numbered 1 and 2, in event order, and nothing more once the queue is empty."""
    first_tries: set[str] = set()

    def first_fails(headers: dict[str, str]) -> int:
        delivery = headers["Cairn-Delivery"]
        if delivery in first_tries:
            return 204
        first_tries.add(delivery)
        return 503

    receiver = Receiver(status_for=first_fails)
    try:
        admin.post("/registry/projects", json={"name": "hook-once"}).raise_for_status()
        admin.post("/projects/hook-once/webhooks", json={"url": receiver.url, "types": ["run.*"]}).raise_for_status()
        runs = [admin.post("/registry/projects/hook-once/runs", json={"name": f"r{i}"}).json()["id"] for i in range(12)]
        wait_until(lambda: len(receiver.received) == len(runs), what="every delivery")
        wait_until(lambda: _settled(platform, admin, "hook-once"), what="the webhook's queue to empty")
        seen: dict[str, list[str]] = {}
        for _, _, headers in receiver.requests:
            seen.setdefault(headers["Cairn-Delivery"], []).append(headers["Cairn-Delivery-Attempt"])
        assert len(seen) == len(runs) and all(tries == ["1", "2"] for tries in seen.values()), seen
        assert [event["aggregate_id"] for event, _, _ in receiver.received] == runs
    finally:
        receiver.close()


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
        wait_until(lambda: "cairn.evt.filt-a.>" in _filter(platform))
        assert WEBHOOK_EVENTS in _filter(platform) and "cairn.evt.filt-b.>" not in _filter(platform)

        admin.post("/registry/projects/filt-b/runs", json={"name": "before-hook"}).raise_for_status()
        run_a = admin.post("/registry/projects/filt-a/runs", json={"name": "r"}).json()
        wait_until(lambda: len(_runs(a)) == 1)
        assert _runs(a)[0][0] == run_a["id"]

        admin.post("/projects/filt-b/webhooks", json={"url": b.url, "types": ["run.*"]}).raise_for_status()
        wait_until(lambda: "cairn.evt.filt-b.>" in _filter(platform))
        run_b = admin.post("/registry/projects/filt-b/runs", json={"name": "after-hook"}).json()
        wait_until(lambda: len(_runs(b)) == 1)
        assert _runs(b)[0][0] == run_b["id"]  # not the run from before the webhook

        admin.delete(f"/projects/filt-a/webhooks/{hook_a['id']}").raise_for_status()
        wait_until(lambda: "cairn.evt.filt-a.>" not in _filter(platform))
        assert "cairn.evt.filt-b.>" in _filter(platform)
        admin.post("/registry/projects/filt-a/runs", json={"name": "after-delete"}).raise_for_status()
        admin.post("/registry/projects/filt-b/runs", json={"name": "marker"}).raise_for_status()
        wait_until(lambda: len(_runs(b)) == 2)  # delivered in log order: A's run was passed over before it
        assert [run for run, _ in _runs(a)] == [run_a["id"]]
    finally:
        a.close()
        b.close()


def test_new_project_mid_stream_neither_loses_nor_repeats(platform: Platform, admin: httpx.Client) -> None:
    # The new project's webhook.created comes between the busy project's events (possibly in the
    # middle of a batch): the consumer is bound again from there; the slow receiver holds back
    # only its own queue.
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
        wait_until(lambda: len(_runs(busy)) >= len(busy_runs) and len(_runs(joined)) >= len(joined_runs))
        wait_until(lambda: _settled(platform, admin, "filt-busy") and _settled(platform, admin, "filt-join"))
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
        wait_until(lambda: "cairn.evt.filt-restart.>" in _filter(platform))
        first = admin.post("/registry/projects/filt-restart/runs", json={"name": "r1"}).json()
        wait_until(lambda: len(_runs(receiver)) == 1)
        wait_until(lambda: _settled(platform, admin, "filt-restart"))  # queued, delivered, row removed
        before = _filter(platform)

        platform.restart("gateway")  # SIGKILL
        platform.wait_healthy()
        assert _filter(platform) == before
        second = admin.post("/registry/projects/filt-restart/runs", json={"name": "r2"}).json()
        wait_until(lambda: len(_runs(receiver)) >= 2)
        wait_until(lambda: _settled(platform, admin, "filt-restart"))
        assert [run for run, _ in _runs(receiver)] == [first["id"], second["id"]]
    finally:
        receiver.close()


def _consumer_settled(platform: Platform) -> bool:
    """Nothing pending and nothing unacknowledged (acks follow the position's commit)."""
    info = _consumer(platform)
    return info.num_pending == 0 and info.num_ack_pending == 0


def _pending(admin: httpx.Client, project: str, webhook_id: str) -> int:
    return next(h["pending"] for h in admin.get(f"/projects/{project}/webhooks").json()["webhooks"]
                if h["id"] == webhook_id)


def _settled(platform: Platform, admin: httpx.Client, project: str) -> bool:
    """The consumer has queued everything (acks follow the commit) and the project's webhooks
    have delivered it all: nothing more can be sent without a new event."""
    return _consumer_settled(platform) and all(
        h["pending"] == 0 for h in admin.get(f"/projects/{project}/webhooks").json()["webhooks"])
