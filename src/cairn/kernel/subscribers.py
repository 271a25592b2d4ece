"""Outside event subscribers: read-only NATS users limited to the projects they are granted.

Another system (a data warehouse loader, a CI bot) may follow a project's events straight from
NATS instead of over SSE or webhooks. It gets a NATS user of its own, ``sub-<name>``, that may only
create push consumers on the event stream whose filter is ``cairn.evt.<project>.>`` of a granted
project, and hear the deliveries on an inbox of its own. The filter is pinned by the subject of
JetStream's consumer-create API (``$JS.API.CONSUMER.CREATE.<stream>.<consumer>.<filter>``: the
server refuses a request whose body names another filter), so the publish permission on that
subject is the whole grant. Nothing else is allowed: no publishing events, no key buckets (the
``cairn-keys`` bucket, sessions, leases), no other streams, no pull requests or acks (which
name a consumer, not a filter, and could drain a service's consumer), no service commands.

Issuance and revocation are events of record on ``cairn.evt._site.event_subscriber.<name>``
(a ``_site`` subject, which no subscriber can be granted). The password is shown once, and the
event keeps only its bcrypt hash, the form nats-server checks directly; the users file that
nats-server includes is rebuilt from these events by :mod:`cairn.kernel.subscriber_sync`.
"""

from __future__ import annotations

import importlib.util
import secrets
import time
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from cairn.kernel.natsauth import Permissions, user_entry
from cairn.protocol import (
    EVENT_SUBJECT_PREFIX,
    EVENTS_STREAM,
    SUBSCRIBER_INBOX_PREFIX,
    SUBSCRIBER_USER_PREFIX,
)

BCRYPT_ROUNDS = 11  # nats-server checks the hash at every connect: about 0.1 s each


def nats_user(name: str) -> str:
    return f"{SUBSCRIBER_USER_PREFIX}{name}"


def inbox_prefix(name: str) -> str:
    """What a subscriber passes as ``inbox_prefix`` to nats-py: only it may listen there."""
    return f"{SUBSCRIBER_INBOX_PREFIX}.{nats_user(name)}"


def project_filter(project: str) -> str:
    return f"{EVENT_SUBJECT_PREFIX}.{project}.>"


def subscriber_permissions(name: str, projects: Iterable[str], stream: str = EVENTS_STREAM) -> Permissions:
    """Consumers on ``stream`` filtered to the granted projects' events, delivered to its inbox.

    Allowed: creating a consumer (any name, filter pinned to ``cairn.evt.<project>.>`` or below
    it), answering the flow-control requests of its deliveries, listening on its own inbox. Not
    even consumer info: its subject names a consumer, and would show the services' consumers. Acks and pull requests are not allowed: their subjects name a consumer and
    not a filter, so granting them would let a subscriber ack or drain a service's consumer;
    subscribers use push consumers with ``ack_policy: none`` and resume from the last stream
    sequence they processed (docs/cluster.md)."""
    creates = tuple(f"$JS.API.CONSUMER.CREATE.{stream}.*.{project_filter(p)}" for p in sorted(set(projects)))
    return Permissions(
        publish_allow=creates + (f"$JS.FC.{stream}.>",),
        subscribe_allow=(f"{inbox_prefix(name)}.>",),
        publish_deny=(f"{EVENT_SUBJECT_PREFIX}.>", "cairn.cmd.>", "$KV.>", "$JS.ACK.>",
                      "$JS.API.CONSUMER.MSG.NEXT.>", "$JS.API.STREAM.>", "$JS.API.CONSUMER.DELETE.>",
                      "$JS.API.CONSUMER.INFO.>"),
        subscribe_deny=(f"{EVENT_SUBJECT_PREFIX}.>", "cairn.>", "$KV.>", "_INBOX.>"),
    )


def new_password() -> str:
    return secrets.token_urlsafe(32)


def hash_password(password: str, rounds: int = BCRYPT_ROUNDS) -> str:
    """The bcrypt hash nats-server accepts in place of a password (``$2b$...``): the ``bcrypt``
    package when installed, else the C library's crypt(3) (libxcrypt does bcrypt), through
    Python's ``crypt`` module (deprecated; Python 3.13 drops it: then install ``bcrypt``)."""
    if importlib.util.find_spec("bcrypt") is not None:
        import bcrypt  # type: ignore[import-not-found]

        return str(bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds)).decode())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import crypt
    hashed = crypt.crypt(password, crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=1 << rounds))
    if not hashed or not hashed.startswith("$2"):
        raise RuntimeError("this system's crypt(3) cannot make bcrypt hashes: pip install bcrypt")
    return hashed


@dataclass(frozen=True)
class Subscriber:
    """A subscriber as its events of record describe it."""

    name: str
    projects: tuple[str, ...]
    password_hash: str
    expires_at: float | None  # unix seconds; None: never
    revoked: bool = False

    def live(self, now: float) -> bool:
        return not self.revoked and (self.expires_at is None or self.expires_at > now)

    def entry(self) -> dict[str, Any]:
        """Its line in the nats-server users list."""
        return user_entry(nats_user(self.name), self.password_hash,
                          subscriber_permissions(self.name, self.projects))


def fold(subscribers: dict[str, Subscriber], event_type: str, data: dict[str, Any]) -> None:
    """Apply one ``event_subscriber.*`` event (data as in schemas/events/) to ``subscribers``."""
    name = data["name"]
    if event_type == "event_subscriber.issued":
        subscribers[name] = Subscriber(name, tuple(data["projects"]), data["password_hash"], data["expires_at"])
    elif event_type == "event_subscriber.revoked" and name in subscribers:
        old = subscribers[name]
        subscribers[name] = Subscriber(old.name, old.projects, old.password_hash, old.expires_at, True)


def live_entries(subscribers: Iterable[Subscriber], now: float | None = None) -> list[dict[str, Any]]:
    moment = time.time() if now is None else now
    return [s.entry() for s in sorted(subscribers, key=lambda s: s.name) if s.live(moment)]


def next_expiry(subscribers: Iterable[Subscriber], now: float) -> float | None:
    """When the next live subscriber expires (the users file must be rewritten then)."""
    times = [s.expires_at for s in subscribers if s.live(now) and s.expires_at is not None]
    return min(times, default=None)
