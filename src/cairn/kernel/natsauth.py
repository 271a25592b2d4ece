"""NATS users: who may connect, and what each may publish and subscribe to.

Every connection to a NATS server that Cairn starts needs a user and password. Each service and
the gateway has a user of its own with the service tier's permissions (the event log, the other
streams, key buckets, service commands); agents share one user that may only publish reports,
heartbeats, job logs and serving replicas' sampled requests and hear their assignments, so a job's code that reaches the agent's
connection still cannot append events of record, call a service's commands, read the event
stream or read a key bucket; the admin user (operator tools, tests) may do anything.

Credentials are JSON files (``{"user": ..., "password": ...}``) of mode 0600, made once under
``<data dir>/secrets/nats/`` and reused on every start. Passwords never travel in URLs, argv or
environment variables: a process is told the file (``CAIRN_NATS_CREDS``), an agent gets its
credentials in the scheduler's answer to its (token-authenticated) registration.
"""

from __future__ import annotations

import json
import re
import secrets
import stat
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from cairn.kernel.errors import ConfigurationError
from cairn.kernel.private_files import private_folder, write_private
from cairn.protocol import LEASE_BUCKET

ADMIN_USER = "admin"
AGENT_USER = "agent"
# Agents' reply subjects start here (not with the default ``_INBOX.<random>``), so the agent user
# may subscribe to its own replies without being able to subscribe to the replies that services
# get on ``_INBOX.>``: those carry event-stream messages and key-bucket values.
AGENT_INBOX_PREFIX = "_INBOX.agents"
_USER_NAME = re.compile(r"[a-z][a-z0-9_-]{0,62}\Z")


@dataclass(frozen=True)
class NatsCredentials:
    """One NATS user's name and password."""

    user: str
    password: str

    def __repr__(self) -> str:  # never print the password by accident
        return f"NatsCredentials(user={self.user!r})"

    def to_dict(self) -> dict[str, str]:
        return {"user": self.user, "password": self.password}

    def connect_options(self) -> dict[str, str]:
        """Keyword arguments for ``nats.connect``."""
        return {"user": self.user, "password": self.password}

    @classmethod
    def from_dict(cls, data: Any, *, source: str) -> "NatsCredentials":
        if (not isinstance(data, dict) or not isinstance(data.get("user"), str)
                or not isinstance(data.get("password"), str) or not data["user"] or not data["password"]):
            raise ConfigurationError(f"NATS credentials in {source} need a JSON object "
                                     '{"user": "...", "password": "..."}')
        return cls(data["user"], data["password"])

    @classmethod
    def read(cls, path: Path) -> "NatsCredentials":
        """Read a credentials file; refuses one that other users may read."""
        try:
            mode = path.stat().st_mode
            text = path.read_text()
        except OSError as err:
            raise ConfigurationError(f"cannot read the NATS credentials file {path}: {err.strerror}") from None
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise ConfigurationError(f"the NATS credentials file {path} may be read by other users "
                                     f"(mode {stat.S_IMODE(mode):04o}); chmod 600 it")
        try:
            data = json.loads(text)
        except ValueError:
            raise ConfigurationError(f"the NATS credentials file {path} is not JSON") from None
        return cls.from_dict(data, source=str(path))


@dataclass(frozen=True)
class Permissions:
    """Subjects a user may publish and subscribe to; ``None`` means no limit. Deny wins over allow."""

    publish_allow: tuple[str, ...] | None
    subscribe_allow: tuple[str, ...] | None
    publish_deny: tuple[str, ...] = ()
    subscribe_deny: tuple[str, ...] = ()


# Services and the gateway: their own subjects, the JetStream API and acks/flow control for their
# consumers, key-value puts, and replies on the default inbox (which covers agents' inboxes too).
SERVICE_PERMISSIONS = Permissions(
    publish_allow=("cairn.>", "$JS.API.>", "$JS.ACK.>", "$JS.FC.>", "$KV.>", "_INBOX.>"),
    subscribe_allow=("cairn.>", "_INBOX.>"),
)
# Agents: exactly what cairn.agent.agent does (plain publishes and request/reply; no JetStream
# API at all: the scheduler makes the job-log stream). The denies repeat what the allow-lists
# leave out, so that a broader allow added later cannot open these by accident.
# Serving replicas are jobs: they never see the agent's credentials, and hand their sampled
# requests to the deployments service over HTTP (cairn.serving.inference_log.HttpRelay), so the
# inference log's subjects are denied here too.
AGENT_PERMISSIONS = Permissions(
    publish_allow=("cairn.sched.report", "cairn.sched.heartbeat", "cairn.logs.>"),
    subscribe_allow=("cairn.sched.agent.>", f"{AGENT_INBOX_PREFIX}.>"),
    publish_deny=("cairn.evt.>", "cairn.cmd.>", "cairn.inference.>", "cairn.feedback.>", "$JS.>", "$KV.>"),
    subscribe_deny=("cairn.evt.>", "cairn.cmd.>", "cairn.inference.>", "cairn.feedback.>", "$JS.>", "$KV.>"),
)
ADMIN_PERMISSIONS = Permissions(publish_allow=None, subscribe_allow=None)
# The metrics service: its own stream of metric batches, and events of record only on its own
# aggregate (``metric.summarized`` on ``cairn.evt.<project>.metrics.<project>``) and its own
# projection's notices (``projection.event_parked``), and the traces it owns
# (``cairn.evt.<project>.trace.<id>``: docs/traces.md): it cannot append another service's events
# or call service commands.
METRICS_USER = "metrics"
METRICS_PERMISSIONS = Permissions(
    publish_allow=("cairn.metrics.>", "cairn.evt.*.metrics.*", "cairn.evt.*.trace.*", "cairn.evt._site.projection.metrics", "$JS.API.>", "$JS.ACK.>", "$JS.FC.>", "_INBOX.>"),
    subscribe_allow=SERVICE_PERMISSIONS.subscribe_allow,
)
# The deployments service: events of record only on its own aggregates (deployment, environment)
# and its projection's notices; the inference log's subjects (issue 19: its feedback routes run in
# this service). It cannot append the registry's events, whose model aliases it follows.
DEPLOYMENTS_USER = "deployments"
DEPLOYMENTS_PERMISSIONS = Permissions(
    publish_allow=("cairn.evt.*.deployment.*", "cairn.evt.*.environment.*", "cairn.evt._site.projection.deployments",
                   "cairn.inference.>", "cairn.feedback.>", "$JS.API.>", "$JS.ACK.>", "$JS.FC.>", "_INBOX.>"),
    subscribe_allow=SERVICE_PERMISSIONS.subscribe_allow,
)
# The monitor service: events of record only on its own aggregates (alert rules, alerts, references,
# profiles) and its projection's notices. It reads the inference log (a pull consumer: the JetStream
# API and replies on its inbox) but cannot publish samples or labels on it.
MONITOR_USER = "monitor"
MONITOR_PERMISSIONS = Permissions(
    publish_allow=("cairn.evt.*.alert_rule.*", "cairn.evt.*.alert.*", "cairn.evt.*.monitor.*", "cairn.evt.*.profile.*",
                   "cairn.evt._site.projection.monitor", "$JS.API.>", "$JS.ACK.>", "$JS.FC.>", "_INBOX.>"),
    subscribe_allow=SERVICE_PERMISSIONS.subscribe_allow,
    publish_deny=("cairn.inference.>", "cairn.feedback.>"),
)
# The pipelines service: events of record only on its own aggregates (pipeline runs, registered
# pipelines) and its projection's notices. It changes other services' state over their HTTP APIs
# (jobs, model versions, aliases, deployments), never by appending their events.
PIPELINES_USER = "pipelines"
PIPELINES_PERMISSIONS = Permissions(
    publish_allow=("cairn.evt.*.pipeline_run.*", "cairn.evt.*.pipeline.*", "cairn.evt._site.projection.pipelines",
                   "$JS.API.>", "$JS.ACK.>", "$JS.FC.>", "_INBOX.>",
                   "$KV.cairn-keys.event-seal"),  # makes the sealing key if first (cairn.kernel.sealing)
    subscribe_allow=SERVICE_PERMISSIONS.subscribe_allow,
    publish_deny=("cairn.inference.>", "cairn.feedback.>"),
)
# Leases of singletons (cairn.kernel.leader): the narrowed services that run one (pipelines'
# engine and triggers, the deployments controller, the monitor's actions, the metrics replica that
# announces summaries) write their keys
# (reads are direct gets, under $JS.API.>).
LEASE_PUBLISH = f"$KV.{LEASE_BUCKET}.>"


def _with_leases(perms: Permissions) -> Permissions:
    return replace(perms, publish_allow=(*(perms.publish_allow or ()), LEASE_PUBLISH))


PIPELINES_PERMISSIONS = _with_leases(PIPELINES_PERMISSIONS)
DEPLOYMENTS_PERMISSIONS = _with_leases(DEPLOYMENTS_PERMISSIONS)
MONITOR_PERMISSIONS = _with_leases(MONITOR_PERMISSIONS)
METRICS_PERMISSIONS = _with_leases(METRICS_PERMISSIONS)
NARROWED = {METRICS_USER: METRICS_PERMISSIONS, DEPLOYMENTS_USER: DEPLOYMENTS_PERMISSIONS,
            MONITOR_USER: MONITOR_PERMISSIONS, PIPELINES_USER: PIPELINES_PERMISSIONS}  # services whose rights are narrower than the service tier's


def permissions_for(user: str) -> Permissions:
    """The admin may do anything, agents what agents do, a service in ``NARROWED`` what it needs,
    every other user is a service."""
    if user == ADMIN_USER:
        return ADMIN_PERMISSIONS
    if user == AGENT_USER:
        return AGENT_PERMISSIONS
    return NARROWED.get(user, SERVICE_PERMISSIONS)


def ensure_credentials(directory: Path, users: Iterable[str]) -> dict[str, Path]:
    """A credentials file per user under ``directory`` (mode 0700), made with a random password
    the first time and kept after that; returns each user's file."""
    private_folder(directory)
    files: dict[str, Path] = {}
    for user in users:
        if not _USER_NAME.match(user):
            raise ConfigurationError(f"{user!r} is not a NATS user name (lowercase letters, digits, - and _)")
        path = directory / f"{user}.json"
        if not path.exists():
            write_private(path, json.dumps(NatsCredentials(user, secrets.token_urlsafe(32)).to_dict()) + "\n")
        NatsCredentials.read(path)  # a damaged or too-open file fails here, at start, with its name
        files[user] = path
    return files


def user_entry(user: str, password: str, perms: Permissions) -> dict[str, Any]:
    """One user of the nats-server ``authorization`` section (``password`` may be a bcrypt hash)."""
    entry: dict[str, Any] = {"user": user, "password": password}
    rules: dict[str, Any] = {}
    for direction, allow, deny in (("publish", perms.publish_allow, perms.publish_deny),
                                   ("subscribe", perms.subscribe_allow, perms.subscribe_deny)):
        rule: dict[str, list[str]] = {}
        if allow is not None:
            rule["allow"] = list(allow)
        if deny:
            rule["deny"] = list(deny)
        if rule:
            rules[direction] = rule
    if rules:
        entry["permissions"] = rules
    return entry


def authorization_block(credentials: Iterable[NatsCredentials], extra: Iterable[dict[str, Any]] = ()) -> str:
    """The nats-server ``authorization`` section for these users (JSON strings are valid there),
    plus ``extra`` entries (outside subscribers: cairn.kernel.subscribers)."""
    lines = ["authorization {", "  users = ["]
    for creds in credentials:
        lines.append(f"    {json.dumps(user_entry(creds.user, creds.password, permissions_for(creds.user)))}")
    lines += [f"    {json.dumps(entry)}" for entry in extra]
    lines += ["  ]", "}"]
    return "\n".join(lines) + "\n"
