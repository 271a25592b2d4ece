"""The event log: a JetStream stream of events of record, appended with optimistic concurrency
and idempotency keys.

Subjects are ``cairn.evt.<project>.<aggregate>.<id>``; each append names the sequence the writer
last saw on that subject (``Nats-Expected-Last-Subject-Sequence``, 0 for a new aggregate) and an
idempotency key (``Nats-Msg-Id``), so a stale writer gets a conflict and a retried command appends
once. A decision that read other aggregates too (a name unique among a project's models) names
their subjects (a wildcard) as ``expected_subject``: the expected sequence is then checked against
the last event on any of them (``Nats-Expected-Last-Subject-Sequence-Subject``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import ssl
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

import nats
from nats import errors as nats_errors
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext
from nats.js.errors import (
    APIError,
    BadRequestError,
    NotFoundError,
    ServiceUnavailableError,
)

from cairn.kernel.consistency import note_appended
from cairn.kernel.envelope import H_EXPECTED_LAST_SUBJECT_SEQ, H_MSG_ID, Event
from cairn.kernel.errors import (
    ConcurrencyConflict,
    ConfigurationError,
    PayloadTooLarge,
    Unavailable,
    nats_unavailable,
)
from cairn.kernel.natsauth import NatsCredentials
from cairn.kernel.natstls import client_tls_context, server_urls
from cairn.protocol import (  # noqa: F401 - EVENTS_STREAM is read from here by tests and tools
    DUPLICATE_IN_PROCESS,
    EVENTS_STREAM,
    H_EXPECTED_LAST_SUBJECT_SEQ_SUBJECT,
    WRONG_LAST_SEQUENCE,
    create_stream,
    events_stream_config,
)

log = logging.getLogger(__name__)
# an append nobody answered in time: a 503 (kernel/errors.py nats_unavailable), not a 500
_NOT_ANSWERED: tuple[type[Exception], ...] = (*nats_unavailable(), ServiceUnavailableError)

MAX_ATOMIC_BATCH = 1000  # the server's default limit on messages in one atomic batch


def message_header_bytes(headers: dict[str, str]) -> int:
    """The size of NATS message headers on the wire (``NATS/1.0``, ``key: value`` lines, blank
    line), which the server counts against ``max_payload`` with the payload."""
    return len(b"NATS/1.0\r\n\r\n") + sum(len(k.encode()) + len(v.encode()) + 4 for k, v in headers.items())


@dataclass(frozen=True)
class Appended:
    """Where an event landed. ``duplicate`` means the idempotency key was seen before."""

    sequence: int
    duplicate: bool


async def wait_for_port(url: str, timeout: float = 30.0) -> str:
    """Wait until something listens at the NATS URL (nats.connect would retry for minutes); of a
    list of servers (comma-separated), any one will do. Returns the server that answered."""
    servers = server_urls(url)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        for server in servers:
            parsed = urlparse(server if "://" in server else f"nats://{server}")
            try:
                with socket.create_connection((parsed.hostname or "127.0.0.1", parsed.port or 4222), timeout=1.0):
                    return server
            except OSError:
                pass
        if loop.time() > deadline:
            shown = ",".join(_without_userinfo(server) for server in servers)
            raise Unavailable(f"no NATS server answers at {shown}")
        await asyncio.sleep(0.05)


async def connect(url: str, *, name: str = "cairn", timeout: float = 30.0,
                  credentials: NatsCredentials | None = None, inbox_prefix: str | None = None,
                  tls: ssl.SSLContext | None = None) -> NATS:
    """Connect to NATS, waiting for the port first; reconnect forever once connected.

    ``url`` may list a cluster's servers, comma-separated: the client reconnects to another when
    one dies. ``tls`` defaults to what the environment asks for (cairn.kernel.natstls).
    Credentials that the server refuses are an error at once: nats-py would otherwise retry the
    first connection forever (it reconnects on any error while ``max_reconnect_attempts`` is -1).
    """
    servers = server_urls(url)
    answering = await wait_for_port(url, timeout)
    auth: dict[str, Any] = credentials.connect_options() if credentials else {}
    if inbox_prefix:
        auth["inbox_prefix"] = inbox_prefix
    tls = tls or client_tls_context()
    if tls is not None:
        auth["tls"] = tls
    await _check_credentials(answering, name, auth)
    if len(servers) > 1:  # a cluster: notice a node cut off the network (see CLUSTER_PING_INTERVAL_S)
        auth.update(ping_interval=CLUSTER_PING_INTERVAL_S, max_outstanding_pings=2)
    return await nats.connect(
        servers if len(servers) > 1 else servers[0],
        name=name,
        connect_timeout=5,
        max_reconnect_attempts=-1,
        reconnect_time_wait=0.2,
        allow_reconnect=True,
        **auth,
    )



# A node cut off the network leaves its clients' TCP connections open but dead: nothing is refused,
# publishes just go unanswered. nats-py notices only by its pings (default every 120 s, two
# unanswered), so a service stayed on a cut-off node for about four minutes, failing every write
# (tests/cluster/test_failures.py). Every 5 s, it moves to another node within about 15 s.
CLUSTER_PING_INTERVAL_S = 5

async def _check_credentials(url: str, name: str, auth: dict[str, Any]) -> None:
    """One connection without retries, to tell refused credentials from a server that is down."""

    async def quiet(_: Exception) -> None:
        pass

    try:
        probe = await nats.connect(url, name=f"{name}-probe", connect_timeout=5, allow_reconnect=False,
                                   max_reconnect_attempts=0, error_cb=quiet, **auth)
    except nats_errors.Error as err:
        if "authorization violation" in str(err).lower() or "authentication" in str(err).lower():
            user = auth.get("user") or urlparse(url).username
            who = f"user {user!r}" if user else "a connection without credentials"
            raise ConfigurationError(
                f"the NATS server at {_without_userinfo(url)} refused {who}: check the NATS credentials "
                "(CAIRN_NATS_CREDS for a service, CAIRN_SCHEDULER_AGENT_NATS_CREDS for the agents)") from None
        return  # anything else: the retrying connection below reports or outlasts it
    except ssl.SSLError as err:  # before OSError, of which it is one: retrying would not help
        raise ConfigurationError(
            f"TLS with the NATS server at {_without_userinfo(url)} failed: {err}; check CAIRN_NATS_TLS_CA "
            "(the cluster's ca.pem) and that the server's certificate names the address used") from None
    except (OSError, asyncio.TimeoutError):
        return
    await probe.close()


def _without_userinfo(url: str) -> str:
    """The URL as it may be printed: without a ``user:password@`` part."""
    parsed = urlparse(url)
    return url if "@" not in parsed.netloc else parsed._replace(netloc=parsed.netloc.rsplit("@", 1)[1]).geturl()


class EventLog:
    """Client for the events-of-record stream."""

    def __init__(self, nc: NATS, *, stream: str = EVENTS_STREAM, replicas: int = 1) -> None:
        self.nc = nc
        self.js: JetStreamContext = nc.jetstream(timeout=10)
        self.stream = stream
        self.replicas = replicas

    @classmethod
    async def open(cls, url: str, *, name: str = "cairn", replicas: int = 1,
                   credentials: NatsCredentials | None = None) -> "EventLog":
        nc = await connect(url, name=name, credentials=credentials)
        event_log = cls(nc, replicas=replicas)
        await event_log.ensure_stream()
        return event_log

    async def close(self) -> None:
        if not self.nc.is_closed:
            await self.nc.drain()

    async def ensure_stream(self) -> None:
        """Create the stream if it does not exist: file storage, atomic batches allowed."""
        try:
            await self.js.stream_info(self.stream)
            return
        except NotFoundError:
            pass
        await create_stream(self.nc, {**events_stream_config(self.replicas), "name": self.stream})

    async def append(
        self, event: Event, *, expected_last_subject_seq: int | None, msg_id: str | None = None,
        expected_subject: str | None = None,
    ) -> Appended:
        """Append one event. Raises ConcurrencyConflict when the subject moved on: the event's own
        subject, or ``expected_subject`` (wildcards allowed) when given."""
        headers = event.headers()
        if expected_last_subject_seq is not None:
            headers[H_EXPECTED_LAST_SUBJECT_SEQ] = str(expected_last_subject_seq)
            if expected_subject is not None:
                headers[H_EXPECTED_LAST_SUBJECT_SEQ_SUBJECT] = expected_subject
        headers[H_MSG_ID] = msg_id or event.id
        payload = self.encode(event, headers)
        try:
            ack = await self.js.publish(event.subject, payload, headers=headers)
        except BadRequestError as err:
            if err.err_code == WRONG_LAST_SEQUENCE:
                raise ConcurrencyConflict(
                    f"{event.aggregate} {event.aggregate_id} was changed by another request; retry",
                    details={"aggregate": event.aggregate, "id": event.aggregate_id},
                ) from None
            raise
        except APIError as err:
            if err.err_code == DUPLICATE_IN_PROCESS:  # the first try of this write is still being stored
                raise Unavailable("the same write (its Idempotency-Key) is still being stored by an earlier "
                                  "try; retry shortly with the same Idempotency-Key",
                                  details={"retry_after": 1}) from None
            raise
        except _NOT_ANSWERED as err:
            # No stream leader answered (a NATS node died and the cluster is electing one, or
            # the server is gone): a 503, not a 500. The append may have been stored all the
            # same: a retry with the same Idempotency-Key appends once.
            raise Unavailable(f"the event log did not answer ({type(err).__name__}); retry shortly "
                              "with the same Idempotency-Key", details={"retry_after": 1}) from None
        if self.stream == EVENTS_STREAM:  # the sequence a reader on another replica may wait for
            note_appended(ack.seq)
        return Appended(sequence=ack.seq, duplicate=bool(ack.duplicate))

    async def append_batch(self, events: list[Event]) -> list[int]:
        """Append events as JetStream atomic batches (all of a batch or none, one disk sync per
        batch instead of one per event); returns the events' stream sequences in order."""
        chunks: list[list[tuple[str, bytes, dict[str, str]]]] = []
        for start in range(0, len(events), MAX_ATOMIC_BATCH):  # every event is checked before any is sent
            chunk = events[start:start + MAX_ATOMIC_BATCH]
            messages = []
            for number, event in enumerate(chunk, 1):
                headers = {**event.headers(), "Nats-Batch-Id": chunk[0].id, "Nats-Batch-Sequence": str(number)}
                if number == len(chunk):
                    headers["Nats-Batch-Commit"] = "1"
                messages.append((event.subject, self.encode(event, headers), headers))
            chunks.append(messages)
        sequences: list[int] = []
        for messages in chunks:
            *leading, (subject, payload, headers) = messages
            for lead_subject, lead_payload, lead_headers in leading:
                await self.nc.publish(lead_subject, lead_payload, headers=lead_headers)
            reply = await self.nc.request(subject, payload, headers=headers, timeout=10)
            answer = json.loads(reply.data)
            if "error" in answer:
                error = answer["error"]
                if error.get("err_code") == WRONG_LAST_SEQUENCE:
                    raise ConcurrencyConflict("an aggregate in the batch was changed by another request; retry")
                raise Unavailable(f"atomic append failed: {error.get('description')}")
            last = int(answer["seq"])
            sequences.extend(range(last - len(messages) + 1, last + 1))
        if sequences and self.stream == EVENTS_STREAM:
            note_appended(sequences[-1])
        return sequences

    def encode(self, event: Event, headers: dict[str, str]) -> bytes:
        """The event as it is published, checked against the server's ``max_payload`` (from the
        connection's INFO; headers count too): an event that cannot be stored is a 413 naming the
        limit and the event's largest parts, before anything is sent, instead of a
        ``MaxPayloadError`` (a 500) from the client or a refusal from the server."""
        payload = event.to_json()
        limit = self.nc.max_payload
        size = len(payload) + message_header_bytes(headers)
        if limit and size > limit:
            parts = sorted(((len(json.dumps(value)), name) for name, value in event.data.items()), reverse=True)
            largest = {name: length for length, name in parts[:3]}
            named = ", ".join(f"{name} ({length} bytes)" for name, length in largest.items())
            raise PayloadTooLarge(
                f"the {event.type} event would be {size} bytes, over the event log's limit of {limit} bytes "
                f"per event (the NATS server's max_payload); its largest parts: {named}: send fewer or "
                "shorter values, or spread them over several requests",
                details={"limit": limit, "size": size, "largest": largest})
        return payload

    async def last_sequence(self) -> int:
        info = await self.js.stream_info(self.stream)
        return int(info.state.last_seq)

    async def last_subject_sequence(self, subject: str) -> int:
        """The stream sequence of the last event on ``subject`` (0 when there is none); a wildcard
        subject gives the last event on any subject it matches."""
        try:
            msg = await self.js.get_last_msg(self.stream, subject, direct=True)
        except NotFoundError:
            if self.replicas <= 1:
                return 0
            # any replica answers a direct get, one behind or cut off too: "none" is asked again of
            # the stream's leader (a run created a moment ago was a 404 in tests/cluster/test_failures.py)
            try:
                msg = await self.js.get_last_msg(self.stream, subject)
            except NotFoundError:
                return 0
        return int(msg.seq or 0)
