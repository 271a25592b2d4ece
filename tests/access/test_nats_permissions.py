"""NATS takes only Cairn's users, and an agent's user can do what an agent does and nothing more.

The forged event is the reproducer of issue 17: a local process that publishes ``member.added``
on a project's membership subject must not make anyone a member. Every check runs against the
platform's real nats-server, with the credentials the scheduler hands a registering agent.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import loopback
import nats
import pytest
from nats.aio.client import Client as NATS
from nats.errors import Error as NatsError

from cairn.kernel.envelope import H_TYPE, Event
from cairn.kernel.eventlog import EVENTS_STREAM
from cairn.kernel.natsauth import AGENT_INBOX_PREFIX, NatsCredentials
from cairn.protocol import KEY_BUCKET, LOGS_STREAM, log_subject

from platform_harness import Platform, read_all_events, running


@pytest.fixture(scope="module")
def own_platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    """Services started with exec, not forked (tests/service_fork.py): the test below reads each
    process's environment from /proc, which shows a forked child's parent's environment."""
    with running(Platform(tmp_path_factory.mktemp("platform"), forked=False)) as plat:
        yield plat


DEADLINE_S = 10.0
# A refused request never gets an answer: how long to wait for one (the server's permission
# error, which the test also requires, arrives at once; a slow success could not pass for it).
REFUSAL_WAIT_S = 0.5


def forged_member_added(project: str) -> Event:
    return Event(type="member.added", project=project, aggregate="membership", aggregate_id=project,
                 data={"user": f"outsider-{uuid.uuid4().hex[:6]}", "role": "admin"}, actor="admin")


def _members(platform: Platform, project: str) -> set[str]:
    resp = loopback.get(f"{platform.gateway}/api/v1/projects/{project}/members", headers=platform.headers, timeout=10)
    assert resp.status_code == 200, resp.text
    return {member["user"] for member in resp.json()["members"]}


def _forged_in_log(platform: Platform, event: Event) -> list[dict[str, Any]]:
    return [e for e in read_all_events(platform.nats_url) if e["id"] == event.id or e["data"] == event.data]


async def _quiet(_: Exception) -> None:
    pass


def test_a_connection_without_credentials_or_with_a_wrong_password_is_refused(platform: Platform,
                                                                              project: str) -> None:
    forged = forged_member_added(project)

    async def attempt(**auth: str) -> str:
        try:
            nc = await nats.connect(platform.nats_server_url, allow_reconnect=False, max_reconnect_attempts=0,
                                    connect_timeout=5, error_cb=_quiet, **auth)
        except NatsError as err:
            return str(err)
        try:  # not expected: publish the forgery, so that the log check below shows what it did
            await nc.jetstream().publish(forged.subject, forged.to_json(), headers=forged.headers())
        finally:
            await nc.close()
        return "connected"

    assert "authorization violation" in asyncio.run(attempt()).lower()
    assert "authorization violation" in asyncio.run(attempt(user="registry", password="guessed")).lower()
    assert not _forged_in_log(platform, forged)
    assert forged.data["user"] not in _members(platform, project)


class AgentConnection:
    """A NATS connection with the agent user from a real registration answer; collects the
    server's permission errors."""

    def __init__(self, platform: Platform) -> None:
        self.platform = platform
        self.errors: list[str] = []
        self.nc: NATS | None = None
        self.agent_id = f"perm-{uuid.uuid4().hex[:8]}"
        answer = loopback.post(f"{platform.gateway}/api/v1/scheduler/agents", headers=platform.headers, timeout=30,
                            json={"agent_id": self.agent_id, "name": "perm", "queue": "perm",
                                  "host": "127.0.0.1", "capacity": {"cpus": 1, "memory_mib": 64}})
        assert answer.status_code == 200, answer.text
        self.answer = answer.json()
        self.credentials = NatsCredentials.from_dict(self.answer["nats_credentials"], source="the answer")

    async def __aenter__(self) -> "AgentConnection":
        async def collect(err: Exception) -> None:
            self.errors.append(str(err).lower())

        self.nc = await nats.connect(self.answer["nats_url"], error_cb=collect, inbox_prefix=AGENT_INBOX_PREFIX,
                                     max_reconnect_attempts=0, **self.credentials.connect_options())
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self.nc is not None
        await self.nc.close()

    async def refused(self, what: str, subject: str, action: Callable[[], Awaitable[object]]) -> None:
        """``action`` must fail, and the server must have named ``subject`` in a permission error."""
        expected = f'permissions violation for {what} to "{subject.lower()}"'
        try:
            await asyncio.wait_for(action(), timeout=3)
        except (NatsError, asyncio.TimeoutError):
            pass
        else:
            raise AssertionError(f"{what} to {subject} succeeded with the agent's credentials")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + DEADLINE_S
        while not any(expected in err for err in self.errors):
            assert loop.time() < deadline, f"no permission error for {subject}; errors: {self.errors}"
            await asyncio.sleep(0.02)


def test_the_agent_user_cannot_append_events_of_record_or_call_service_commands(platform: Platform,
                                                                                 project: str) -> None:
    agent = AgentConnection(platform)
    forged = forged_member_added(project)

    async def scenario() -> None:
        async with agent:
            nc = agent.nc
            assert nc is not None
            js = nc.jetstream(timeout=REFUSAL_WAIT_S)
            await agent.refused("publish", forged.subject, lambda: js.publish(
                forged.subject, forged.to_json(), headers=forged.headers()))
            await agent.refused("publish", forged.subject, lambda: nc.request(
                forged.subject, forged.to_json(), headers={H_TYPE: forged.type}, timeout=REFUSAL_WAIT_S))
            command = "cairn.cmd.registry.start_run"
            await agent.refused("publish", command, lambda: nc.request(command, b"{}", timeout=REFUSAL_WAIT_S))

    asyncio.run(scenario())
    assert not _forged_in_log(platform, forged)
    assert forged.data["user"] not in _members(platform, project)


def test_the_agent_user_cannot_read_the_event_stream_or_key_buckets(platform: Platform) -> None:
    agent = AgentConnection(platform)

    async def scenario() -> None:
        async with agent:
            nc = agent.nc
            assert nc is not None
            js = nc.jetstream(timeout=REFUSAL_WAIT_S)
            await agent.refused("publish", f"$JS.API.CONSUMER.CREATE.{EVENTS_STREAM}",
                                lambda: js.add_consumer(EVENTS_STREAM))
            await agent.refused("publish", f"$JS.API.STREAM.MSG.GET.{EVENTS_STREAM}",
                                lambda: js.get_msg(EVENTS_STREAM, 1))
            await agent.refused("publish", f"$JS.API.DIRECT.GET.{EVENTS_STREAM}",
                                lambda: js.get_msg(EVENTS_STREAM, 1, direct=True))
            await agent.refused("publish", f"$JS.API.STREAM.INFO.KV_{KEY_BUCKET}", lambda: js.key_value(KEY_BUCKET))
            await agent.refused("publish", f"$JS.API.DIRECT.GET.KV_{KEY_BUCKET}.$KV.{KEY_BUCKET}.job-token",
                                lambda: nc.request(f"$JS.API.DIRECT.GET.KV_{KEY_BUCKET}.$KV.{KEY_BUCKET}.job-token",
                                                   b"", timeout=REFUSAL_WAIT_S))
            # live traffic: events as services append them, and the replies services get
            for subject in ("cairn.evt.>", "_INBOX.>", f"$KV.{KEY_BUCKET}.>"):
                await agent.refused("subscription", subject, lambda s=subject: _subscribe_and_wait(nc, s))

    asyncio.run(scenario())


async def _subscribe_and_wait(nc: NATS, subject: str) -> None:
    """A refused subscription is not an exception in nats-py: wait (bounded) for a message that
    cannot come, so ``refused`` sees a timeout and then the server's error."""
    sub = await nc.subscribe(subject)
    await nc.flush()
    await sub.next_msg(timeout=REFUSAL_WAIT_S)


def test_the_agent_user_sends_heartbeats_reports_and_job_logs(platform: Platform, project: str) -> None:
    agent = AgentConnection(platform)
    subject = log_subject(project, "job-perm", 1)

    async def scenario() -> int:
        async with agent:
            nc = agent.nc
            assert nc is not None
            await nc.publish(agent.answer["heartbeat_subject"],
                             json.dumps({"agent_id": agent.agent_id, "running": []}).encode())
            await nc.publish(subject, b"hello from a job\n")
            leaving = json.dumps({"kind": "leaving", "agent_id": agent.agent_id}).encode()
            reply = await nc.request(agent.answer["report_subject"], leaving, timeout=DEADLINE_S)
            assert json.loads(reply.data).get("ok"), reply.data
            # the reply came after the publishes were processed: their errors would be here by now
            assert agent.errors == []
        admin = await nats.connect(platform.nats_url)
        try:
            return int((await admin.jetstream().get_last_msg(LOGS_STREAM, subject, direct=True)).seq or 0)
        finally:
            await admin.close()

    assert asyncio.run(scenario()) > 0


def test_nats_credentials_are_private_and_no_process_environment_holds_a_password(platform: Platform) -> None:
    secrets_dir = platform.data_dir / "secrets" / "nats"
    assert secrets_dir.stat().st_mode & 0o777 == 0o700
    assert sorted(platform.nats_creds) == ["admin", "agent", "artifacts", "deployments", "gateway", "lineage",
                                           "metrics", "monitor", "pipelines", "registry", "scheduler"]
    passwords = set()
    for path in platform.nats_creds.values():
        assert path.parent == secrets_dir and path.stat().st_mode & 0o777 == 0o600, path
        passwords.add(NatsCredentials.read(path).password)
    assert len(passwords) == len(platform.nats_creds), "every user has a password of its own"
    assert (platform.root / "nats" / "nats.conf").stat().st_mode & 0o777 == 0o600
    for name, proc in platform.procs.items():
        with open(f"/proc/{proc.pid}/environ", "rb") as env:
            environ = env.read().decode(errors="replace")
        assert not [p for p in passwords if p in environ], f"{name}'s environment holds a NATS password"
        assert f"CAIRN_NATS_CREDS={platform.nats_creds[name]}" in environ.split("\0")


def test_the_metrics_user_appends_only_on_its_own_aggregate(platform: Platform, project: str) -> None:
    """The metrics service announces summaries on ``cairn.evt.<project>.metrics.<project>``; with
    its credentials nothing else in the event log, and no service command, can be published."""
    credentials = NatsCredentials.read(platform.nats_creds["metrics"])
    forged = forged_member_added(project)
    summary = Event(type="metric.summarized", project=project, aggregate="metrics", aggregate_id=project,
                    data={"summaries": [{"run_id": "perm-run", "key": "loss", "count": 1, "min": 1.0, "max": 1.0,
                                         "last": 1.0, "last_step": 0, "last_time": 0.0}]}, actor="metrics:writer")
    errors: list[str] = []

    async def collect(err: Exception) -> None:
        errors.append(str(err).lower())

    async def refused(nc: NATS, subject: str, action: Callable[[], Awaitable[object]]) -> None:
        expected = f'permissions violation for publish to "{subject.lower()}"'
        try:
            await asyncio.wait_for(action(), timeout=3)
        except (NatsError, asyncio.TimeoutError):
            pass
        else:
            raise AssertionError(f"publish to {subject} succeeded with the metrics service's credentials")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + DEADLINE_S
        while not any(expected in err for err in errors):
            assert loop.time() < deadline, f"no permission error for {subject}; errors: {errors}"
            await asyncio.sleep(0.02)

    async def scenario() -> int:
        nc = await nats.connect(platform.nats_server_url, error_cb=collect, max_reconnect_attempts=0,
                                **credentials.connect_options())
        try:
            js = nc.jetstream(timeout=REFUSAL_WAIT_S)
            await refused(nc, forged.subject, lambda: js.publish(forged.subject, forged.to_json(),
                                                                 headers=forged.headers()))
            run_event = f"cairn.evt.{project}.run.perm-run"
            await refused(nc, run_event, lambda: js.publish(run_event, b"{}"))
            command = "cairn.cmd.registry.start_run"
            await refused(nc, command, lambda: nc.request(command, b"{}", timeout=REFUSAL_WAIT_S))
            ack = await nc.jetstream(timeout=DEADLINE_S).publish(summary.subject, summary.to_json(),
                                                                 headers=summary.headers())
            return int(ack.seq)
        finally:
            await nc.close()

    assert asyncio.run(scenario()) > 0
    assert not _forged_in_log(platform, forged)
    assert [e["type"] for e in read_all_events(platform.nats_url) if e["id"] == summary.id] == ["metric.summarized"]
