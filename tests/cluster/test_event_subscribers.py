"""Outside systems reading events straight from NATS (docs/cluster.md, "Event subscriptions from
other systems"): credentials issued over HTTP reach nats-server through the subscriber sync (a
users file and a reload), let their holder read its projects' events and nothing else, carry no
secret material, and stop working when revoked or expired.

A platform of its own (real nats-server and service processes) plus the sync process that
``cairn up`` runs next to its server; the subscriber is a plain nats-py client.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import nats
import pytest
from nats.aio.client import Client
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from cairn.kernel.subscriber_sync import local_argv
from cairn.protocol import EVENTS_STREAM

from platform_harness import Platform, running

A, B = "subs-alpha", "subs-beta"
DEADLINE_S = 30.0


@pytest.fixture(scope="module")
def plat(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    with running(Platform(tmp_path_factory.mktemp("subscribers"))) as p:
        log = open(p.root / "subscriber-sync.log", "ab")  # noqa: SIM115 - the child writes it
        sync = subprocess.Popen(local_argv(p.root / "nats", p.data_dir / "secrets" / "nats"),
                                env={**os.environ, "CAIRN_NATS_URL": p.nats_server_url},
                                stdout=log, stderr=log)
        log.close()
        try:
            yield p
        finally:
            sync.kill()
            sync.wait()


@pytest.fixture(scope="module")
def admin(plat: Platform) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=f"{plat.gateway}/api/v1", headers=plat.headers, timeout=30) as client:
        for project in (A, B):
            client.post("/registry/projects", json={"name": project}).raise_for_status()
        yield client


def issue(client: httpx.Client, name: str, projects: list[str], **extra: Any) -> dict[str, Any]:
    resp = client.post("/events/subscribers", json={"name": name, "projects": projects, **extra})
    assert resp.status_code == 201, resp.text
    return resp.json()


class Subscriber:
    """A nats-py connection as an issued subscriber, remembering the errors the server sent."""

    def __init__(self, creds: dict[str, Any], url: str) -> None:
        self.creds, self.url = creds, url
        self.errors: list[str] = []
        self.nc: Client | None = None

    async def connect(self) -> Client:
        async def on_error(err: Exception) -> None:
            self.errors.append(str(err))

        self.nc = await nats.connect(self.url, user=self.creds["user"], password=self.creds["password"],
                                     inbox_prefix=self.creds["inbox_prefix"], error_cb=on_error,
                                     allow_reconnect=False, connect_timeout=5)
        return self.nc

    async def consume(self, project: str, name: str, start_seq: int = 1) -> asyncio.Queue[Any]:
        """A push consumer of the project's events made as docs/cluster.md shows; the deliveries."""
        assert self.nc is not None
        box = f"{self.creds['inbox_prefix']}.{name}"
        got: asyncio.Queue[Any] = asyncio.Queue()
        await self.nc.subscribe(box, cb=got.put)
        await self.nc.jsm().add_consumer(self.creds["stream"], ConsumerConfig(
            name=name, filter_subject=f"cairn.evt.{project}.>", deliver_subject=box, ack_policy=AckPolicy.NONE,
            deliver_policy=DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=start_seq, inactive_threshold=300.0),
            timeout=15)
        return got

    async def api(self, subject: str, config: dict[str, Any]) -> dict[str, Any]:
        assert self.nc is not None
        body = {"stream_name": EVENTS_STREAM,
                "config": {"ack_policy": "none", "deliver_policy": "all", "inactive_threshold": 60_000_000_000,
                           **config}}
        try:
            msg = await self.nc.request(subject, json.dumps(body).encode(), timeout=15)
        except nats.errors.TimeoutError as err:
            raise nats.errors.TimeoutError(f"no answer on {subject}; server errors: {self.errors}") from err
        return dict(json.loads(msg.data))

    async def refused(self, subject: str, body: bytes = b"{}") -> None:
        """A request to ``subject`` is refused by the server: a permissions violation comes back
        (and the request is not delivered; it would otherwise get its API's answer)."""
        assert self.nc is not None
        expected = f'permissions violation for publish to "{subject}"'.lower()
        answers: asyncio.Queue[Any] = asyncio.Queue()
        reply = f"{self.creds['inbox_prefix']}.refused.{len(self.errors)}"
        await self.nc.subscribe(reply, cb=answers.put)
        await self.nc.publish(subject, body, reply=reply)
        await until(lambda: any(expected in e.lower() for e in self.errors), f"the server refusing {subject}")
        await self.nc.flush()
        assert answers.empty(), f"{subject} answered: {answers.get_nowait().data!r}"


async def until(predicate: Callable[[], object], what: str, timeout: float = DEADLINE_S) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def connected(creds: dict[str, Any], url: str) -> Subscriber:
    """Connect once the sync has given the server this user (it follows the issue event)."""
    deadline = time.monotonic() + DEADLINE_S
    while True:
        sub = Subscriber(creds, url)
        try:
            await sub.connect()
            return sub
        except (nats.errors.Error, OSError):
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.1)


async def refused_connection(creds: dict[str, Any], url: str) -> None:
    """The server refuses the user now (waits for the sync to have removed it)."""
    deadline = time.monotonic() + DEADLINE_S
    while True:
        sub = Subscriber(creds, url)
        try:
            nc = await sub.connect()
        except (nats.errors.Error, OSError):
            return
        await nc.close()
        assert time.monotonic() < deadline, "the server still accepts the user"
        await asyncio.sleep(0.1)


async def next_data(queue: asyncio.Queue[Any], timeout: float = DEADLINE_S) -> dict[str, Any]:
    msg = await asyncio.wait_for(queue.get(), timeout)
    return dict(json.loads(msg.data))


def test_a_subscriber_reads_its_projects_events_and_nothing_else(plat: Platform, admin: httpx.Client) -> None:
    creds = issue(admin, "warehouse", [A])
    assert creds["user"] == "sub-warehouse" and creds["filters"] == [f"cairn.evt.{A}.>"]
    assert "password_hash" not in json.dumps(admin.get("/events/subscribers").json())

    async def scenario() -> None:
        sub = await connected(creds, plat.nats_server_url)
        got = await sub.consume(A, "wh-a")
        first = await next_data(got)
        assert (first["type"], first["project"]) == ("project.created", A)
        admin.post(f"/registry/projects/{A}/experiments", json={"name": "live-one"}).raise_for_status()
        while (msg := await asyncio.wait_for(got.get(), DEADLINE_S)) and json.loads(msg.data)["type"] != "experiment.created":
            assert json.loads(msg.data)["project"] == A
        assert json.loads(msg.data)["data"]["name"] == "live-one"
        seen = msg.metadata.sequence.stream

        # resume: a new connection and consumer from the sequence after the last one processed
        assert sub.nc is not None
        await sub.nc.close()
        admin.post(f"/registry/projects/{A}/experiments", json={"name": "while-away"}).raise_for_status()
        sub = await connected(creds, plat.nats_server_url)
        again = await sub.consume(A, "wh-a2", start_seq=seen + 1)
        missed = await next_data(again)
        assert (missed["type"], missed["data"]["name"]) == ("experiment.created", "while-away")

        nc = sub.nc
        assert nc is not None
        evt = f"$JS.API.CONSUMER.CREATE.{EVENTS_STREAM}"
        for subject in (f"{evt}.x1.cairn.evt.{B}.>", f"{evt}.x2.cairn.evt.>", f"{evt}.x3",
                        "$JS.API.CONSUMER.CREATE.CAIRN_METRICS.x4.cairn.metrics.>",
                        f"$JS.API.CONSUMER.MSG.NEXT.{EVENTS_STREAM}.registry",
                        f"$JS.API.CONSUMER.INFO.{EVENTS_STREAM}.registry", f"$JS.ACK.{EVENTS_STREAM}.registry.1.1.1.1.0",
                        "$JS.API.STREAM.INFO.KV_cairn-keys", "$JS.API.DIRECT.GET.KV_cairn-keys.$KV.cairn-keys.job-token",
                        "cairn.cmd.registry.create_project"):
            await sub.refused(subject, json.dumps({"stream_name": EVENTS_STREAM,
                                                   "config": {"filter_subject": "cairn.evt.>"}}).encode())
        # the filter in the body must be the one in the subject: the server checks (no permission is needed)
        wider = await sub.api(f"{evt}.x5.cairn.evt.{A}.>", {"filter_subject": "cairn.evt.>", "name": "x5"})
        assert "did not match filtered subject" in wider["error"]["description"]
        several = await sub.api(f"{evt}.x6.cairn.evt.{A}.>", {"filter_subjects": [f"cairn.evt.{B}.>"], "name": "x6"})
        assert "error" in several

        await nc.publish(f"cairn.evt.{A}.run.forged", b"{}")
        await until(lambda: any(f'publish to "cairn.evt.{A}.run.forged"' in e.lower() for e in sub.errors),
                    "the refused publish")
        for subject in (f"cairn.evt.{A}.>", "$KV.cairn-keys.>", "_INBOX.>"):
            await nc.subscribe(subject)
            await until(lambda s=subject: any(f'subscription to "{s.lower()}"' in e.lower() for e in sub.errors),
                        f"the refused subscription to {subject}")
        await nc.close()

    asyncio.run(scenario())


def test_a_subscriber_never_sees_secret_material(plat: Platform, admin: httpx.Client) -> None:
    """A webhook's signing secret and a pipeline's status token travel sealed; tokens' and
    subscribers' hashes are not on project subjects."""
    creds = issue(admin, "auditor", [A])
    hook = admin.post(f"/projects/{A}/webhooks", json={"url": "http://127.0.0.1:9/closed", "types": ["run.*"]}).json()
    token = admin.post("/tokens", json={"user": "vera-subs"}).json()
    status_token = "ghp_" + "s3cr3t" * 6
    admin.post(f"/pipelines/projects/{A}/definitions", json={
        "definition": "name: feed\nsteps:\n  - {id: a, command: echo}\n",
        "status": {"url": "https://api.github.com", "token": status_token}}).raise_for_status()
    admin.post(f"/projects/{A}/members", json={"user": "vera-subs", "role": "viewer"}).raise_for_status()
    issue(admin, "other", [A])  # its password hash is an event too

    async def scenario() -> list[bytes]:
        sub = await connected(creds, plat.nats_server_url)
        got = await sub.consume(A, "audit-a")
        seen: list[bytes] = []
        while True:
            msg = await asyncio.wait_for(got.get(), DEADLINE_S)
            seen.append(msg.data + json.dumps(dict(msg.headers or {})).encode())
            if json.loads(msg.data)["type"] == "member.added":
                break
        assert sub.nc is not None
        await sub.nc.close()
        return seen

    seen = b"\n".join(asyncio.run(scenario())).decode()
    assert hook["id"] in seen and "webhook.created" in seen
    secret_part = hook["secret"].removeprefix("whsec_")
    assert secret_part not in seen and "sealed:v1:" in seen
    assert "pipeline.registered" in seen and status_token not in seen
    assert token["token"].split("_")[-1] not in seen and "secret_hash" not in seen and "password_hash" not in seen


def test_revoked_and_expired_credentials_stop_working(plat: Platform, admin: httpx.Client) -> None:
    creds = issue(admin, "leaver", [A])
    brief = issue(admin, "brief", [A], expires_in_days=5 / 86400)  # five seconds
    assert brief["expires_at"] is not None

    async def scenario() -> None:
        sub = await connected(creds, plat.nats_server_url)
        resp = admin.delete("/events/subscribers/leaver")
        assert resp.status_code == 200 and resp.json()["revoked"] is True, resp.text
        # the reload cuts the live connection (allow_reconnect=False: it closes)
        await until(lambda: sub.nc is not None and sub.nc.is_closed, "the revoked user's connection to close")
        await refused_connection(creds, plat.nats_server_url)

        timed = await connected(brief, plat.nats_server_url)  # works until it expires
        assert timed.nc is not None
        await until(lambda: timed.nc is not None and timed.nc.is_closed, "the expired user's connection to close")
        await refused_connection(brief, plat.nats_server_url)

    asyncio.run(scenario())
    listed = {s["name"]: s for s in admin.get("/events/subscribers").json()["subscribers"]}
    assert listed["leaver"]["revoked"] is True and listed["leaver"]["revoked_by"]


def test_who_may_issue_list_and_revoke(plat: Platform, admin: httpx.Client) -> None:
    """A site admin, or an admin of every project named; a job's token never; the password once."""
    users = {}
    for user, roles in (("ada-subs", {A: "admin", B: "viewer"}), ("ed-subs", {A: "editor"})):
        users[user] = admin.post("/tokens", json={"user": user}).json()["token"]
        for project, role in roles.items():
            admin.post(f"/projects/{project}/members", json={"user": user, "role": role}).raise_for_status()

    def as_user(user: str) -> httpx.Client:
        return httpx.Client(base_url=f"{plat.gateway}/api/v1", timeout=30,
                            headers={"Authorization": f"Bearer {users[user]}"})

    with as_user("ada-subs") as ada, as_user("ed-subs") as ed:
        assert ed.post("/events/subscribers", json={"name": "ed-feed", "projects": [A]}).status_code == 403
        assert ada.post("/events/subscribers", json={"name": "ada-both", "projects": [A, B]}).status_code == 403
        mine = issue(ada, "ada-feed", [A])
        assert mine["password"] and mine["projects"] == [A]
        assert ada.post("/events/subscribers", json={"name": "ada-feed", "projects": [A]}).status_code == 409
        names = {s["name"] for s in ada.get("/events/subscribers").json()["subscribers"]}
        assert "ada-feed" in names and "other" in names  # every subscriber of projects ada administers
        assert all("password" not in s for s in ada.get("/events/subscribers").json()["subscribers"])
        assert ed.get("/events/subscribers").json()["subscribers"] == []
        assert ed.delete("/events/subscribers/ada-feed").status_code == 404
        issue(admin, "site-both", [A, B])
        assert ada.delete("/events/subscribers/site-both").status_code == 404  # not admin of B
        assert ada.delete("/events/subscribers/ada-feed").status_code == 200
    assert httpx.get(f"{plat.gateway}/api/v1/events/subscribers", timeout=10).status_code == 401
    # a retried request (same Idempotency-Key) whose first answer was lost cannot hand out a
    # password that NATS does not know: the first attempt's is the recorded one
    once = {"name": "retried", "projects": [A]}
    first = admin.post("/events/subscribers", json=once, headers={"Idempotency-Key": "subs-retry-1"})
    assert first.status_code == 201, first.text
    again = admin.post("/events/subscribers", json=once, headers={"Idempotency-Key": "subs-retry-1"})
    assert again.status_code == 409 and "earlier attempt" in again.text


def test_the_users_file_is_private(plat: Platform) -> None:
    users = Path(plat.root / "nats" / "users.conf")
    assert users.stat().st_mode & 0o077 == 0
    assert "sub-" in users.read_text() or "authorization" in users.read_text()


def test_the_cli_writes_a_creds_file_that_connects(plat: Platform, admin: httpx.Client, tmp_path: Path) -> None:
    """``cairn events credentials issue --out`` (0600), then the docs' nats-py recipe with that file."""
    from click.testing import CliRunner

    from cairn.cli.main import cli

    runner = CliRunner(env={"CAIRN_TOKEN": plat.token})
    out = tmp_path / "feed.json"
    result = runner.invoke(cli, ["--url", plat.gateway, "--json", "events", "credentials", "issue", "-p", A,
                                 "--name", "cli-feed", "--out", str(out), "--server", plat.nats_server_url],
                           catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert out.stat().st_mode & 0o777 == 0o600
    creds = json.loads(out.read_text())
    assert creds["user"] == "sub-cli-feed" and creds["servers"] == [plat.nats_server_url]

    async def scenario() -> dict[str, Any]:
        sub = await connected(creds, creds["servers"][0])
        got = await sub.consume(A, "cli-feed-1")
        first = await next_data(got)
        assert sub.nc is not None
        await sub.nc.close()
        return first

    assert asyncio.run(scenario())["project"] == A
    listed = runner.invoke(cli, ["--url", plat.gateway, "--json", "events", "credentials", "list"])
    assert "cli-feed" in listed.output and creds["password"] not in listed.output
    revoked = runner.invoke(cli, ["--url", plat.gateway, "--json", "events", "credentials", "revoke", "cli-feed"])
    assert revoked.exit_code == 0 and json.loads(revoked.output)["revoked"] is True


def test_the_users_file_is_rewritten_when_a_restarted_server_overwrote_it(tmp_path: Path) -> None:
    """A restarted server's start writes the static users only: the sync puts the subscribers back."""
    from cairn.kernel.natsauth import ensure_credentials
    from cairn.kernel.subscriber_sync import UsersFile
    from cairn.kernel.subscribers import Subscriber, hash_password

    ensure_credentials(tmp_path / "creds", ["registry", "admin"])
    (tmp_path / "ports").mkdir()
    users = UsersFile(tmp_path / "users.conf", tmp_path / "creds", tmp_path / "ports")
    live = {"feed": Subscriber("feed", (A,), hash_password("pw", 4), None),
            "gone": Subscriber("gone", (A,), hash_password("pw", 4), time.time() - 1)}
    assert users.update(live, time.time())
    text = users.path.read_text()
    assert '"user": "sub-feed"' in text and "sub-gone" not in text and '"user": "registry"' in text
    assert f"$JS.API.CONSUMER.CREATE.{EVENTS_STREAM}.*.cairn.evt.{A}.>" in text
    assert not users.update(live, time.time())  # nothing changed: no rewrite, no reload
    users.path.write_text("authorization { users = [] }\n")  # what a restart leaves
    assert users.update(live, time.time()) and users.path.read_text() == text
    # a sync started again beside a running server whose file already says this: no reload (in a
    # rolling upgrade the syncs restart, the servers do not)
    from cairn.natsserver import start_nats_server

    server, _ = start_nats_server(tmp_path / "nats")
    try:
        (tmp_path / "ports" / f"nats-server_{server.pid}.ports").write_text("{}")
        again = UsersFile(tmp_path / "users.conf", tmp_path / "creds", tmp_path / "ports")
        assert not again.update(live, time.time()) and again.reloaded_pid == server.pid
    finally:
        server.terminate()
        server.wait()


def test_a_stale_ports_file_naming_another_process_gets_no_reload(tmp_path: Path) -> None:
    """A server killed without cleaning up leaves ``nats-server_<pid>.ports``; once pids wrap, that
    pid may be any process (a gateway, a service): it must not get the SIGHUP, which would end it."""
    import subprocess
    import sys

    from cairn.kernel.subscriber_sync import runs_nats_server, server_pid
    from cairn.natsserver import start_nats_server

    ports = tmp_path / "ports"
    ports.mkdir()
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (ports / f"nats-server_{other.pid}.ports").write_text("{}")
        assert not runs_nats_server(other.pid)
        assert server_pid(ports) is None  # alive, but no nats-server: never signalled
        server, _ = start_nats_server(tmp_path / "nats")
        try:
            (ports / f"nats-server_{server.pid}.ports").write_text("{}")
            assert runs_nats_server(server.pid) and server_pid(ports) == server.pid
        finally:
            server.terminate()
            server.wait()
    finally:
        other.kill()
        other.wait()
    assert other.poll() == -9  # it was never sent a SIGHUP (that would have ended it first)
