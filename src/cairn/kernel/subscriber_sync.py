"""Keep a nats-server's users file in step with the outside subscribers' events of record.

nats-server reads users from its config only, so a subscriber issued or revoked over HTTP must
reach every NATS node's config. One of these runs next to each node (``cairn up`` runs one for
its own server): it follows ``cairn.evt._site.event_subscriber.>`` from the start of the log,
and whenever the set of live subscribers changes (an issue, a revocation, an expiry) it rewrites
the node's users file (the static per-role users from their credentials files, plus one entry per
live subscriber with its bcrypt hash) and tells the server to reload it (SIGHUP). On a reload
nats-server closes the connections of users that are gone, so a revoked or expired subscriber is
cut off within about a second, and cannot connect again.

Why a users file and a reload, not NATS auth callout: callout needs a signed user JWT for every
connection (nkeys, an issuer key pair in the server config, a Cairn process answering
``$SYS.REQ.USER.AUTH`` on the hot path of every connect, services' included); a file rewritten
from the log keeps the servers answering on their own while Cairn is down, and revocation is one
reload.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import time
from pathlib import Path

from cairn.kernel.envelope import Event
from cairn.kernel.eventlog import EventLog
from cairn.kernel.natsauth import NatsCredentials, authorization_block
from cairn.kernel.subscribers import Subscriber, fold, live_entries
from cairn.natsserver import write_private_atomic
from cairn.protocol import EVENT_SUBJECT_PREFIX, SUBSCRIBER_AGGREGATE

log = logging.getLogger("cairn.subscriber_sync")
TICK_S = 0.5  # how often expiries are checked (and how late an expired subscriber may be cut off)


def static_users(creds_dir: Path) -> list[NatsCredentials]:
    """Every role's user from its credentials file (``<role>.json``, as natsauth makes them)."""
    return [NatsCredentials.read(path) for path in sorted(creds_dir.glob("*.json"))]


def server_pid(ports_dir: Path) -> int | None:
    """The live nats-server that wrote a ports file in ``ports_dir`` (``nats-server_<pid>.ports``),
    the newest first. A file left by a server that was killed names a pid that another process may
    have since (pids wrap around): a SIGHUP to it would end that process, so where ``/proc`` says
    what runs at a pid, only a nats-server counts."""
    files = sorted(ports_dir.glob("*.ports"), key=_mtime, reverse=True)
    for path in files:
        try:
            pid = int(path.stem.rsplit("_", 1)[1])
            os.kill(pid, 0)
        except (IndexError, ValueError, ProcessLookupError, PermissionError):
            continue
        if runs_nats_server(pid):
            return pid
    return None


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def runs_nats_server(pid: int, proc: Path = Path("/proc")) -> bool:
    """Whether the process ``pid`` is a nats-server (its program's name), or, on a system without
    ``proc``, whether it is alive at all (then the ports file is all there is to go by)."""
    if not (proc / "self").exists():
        return True
    try:
        program = (proc / str(pid) / "cmdline").read_bytes().split(b"\0", 1)[0]
    except OSError:
        return False
    return os.path.basename(program.decode(errors="replace")).startswith("nats-server")


USERS_FILE = "users.conf"  # next to nats.conf, which includes it (cairn.natsserver.write_config)


def local_argv(nats_dir: Path, secrets_dir: Path) -> list[str]:
    """How ``cairn up`` runs this for the server it starts (``start_private_nats``'s folders),
    as the admin user: it reads the whole event stream from its start."""
    import sys

    return [sys.executable, "-m", "cairn.kernel.subscriber_sync", "--creds", str(secrets_dir / "admin.json"),
            "--users-file", str(nats_dir / USERS_FILE), "--static-creds-dir", str(secrets_dir),
            "--ports-dir", str(nats_dir / "ports")]


class UsersFile:
    """The users file of one node and how to make its server reread it."""

    def __init__(self, path: Path, creds_dir: Path, ports_dir: Path) -> None:
        self.path, self.creds_dir, self.ports_dir = path, creds_dir, ports_dir
        self.written: str | None = None
        self.reloaded_pid: int | None = None  # the server that last reloaded what we wrote

    def _on_disk(self) -> str | None:
        try:
            return self.path.read_text()
        except OSError:
            return None

    def render(self, subscribers: dict[str, Subscriber], now: float) -> str:
        return authorization_block(static_users(self.creds_dir), live_entries(subscribers.values(), now))

    def update(self, subscribers: dict[str, Subscriber], now: float) -> bool:
        """Rewrite and reload if what the server should know changed, or the server is a new one
        (restarted: its start rewrote the file with the static users only, or it may have read the
        file before our last write); whether it did."""
        text = self.render(subscribers, now)
        pid = server_pid(self.ports_dir)
        if self.written is None and self._on_disk() == text and pid is not None:
            # a sync (re)started beside a server whose file already says this (a rolling upgrade
            # restarts the sync, not the server): the server has it; a reload would only disturb it
            self.written, self.reloaded_pid = text, pid
            return False
        if text == self.written and self._on_disk() == text and pid == self.reloaded_pid:
            return False
        if self._on_disk() != text:
            write_private_atomic(self.path, text)
        if pid is None:
            log.warning("no running nats-server wrote a ports file in %s yet: not reloaded", self.ports_dir)
        else:
            os.kill(pid, signal.SIGHUP)
        self.written, self.reloaded_pid = text, pid
        return True


async def follow(nats_url: str, credentials: NatsCredentials, users: UsersFile, stop: asyncio.Event) -> None:
    """Fold the subscribers' events as they come and keep ``users`` in step, until ``stop``."""
    event_log = await EventLog.open(nats_url, name="cairn-subscriber-sync", credentials=credentials)
    subject = f"{EVENT_SUBJECT_PREFIX}._site.{SUBSCRIBER_AGGREGATE}.>"
    sub = await event_log.js.subscribe(subject, ordered_consumer=True, stream=event_log.stream)
    subscribers: dict[str, Subscriber] = {}
    try:
        while not stop.is_set():
            try:
                msg = await sub.next_msg(timeout=TICK_S)
            except asyncio.TimeoutError:
                msg = None
            if msg is not None:
                event = Event.from_message(msg.data, msg.metadata.sequence.stream, msg.headers)
                fold(subscribers, event.type, event.data)
                if msg.metadata.num_pending:
                    continue  # catching up: write once the backlog is folded
            if users.update(subscribers, time.time()):
                log.info("users file %s now has %d live subscribers", users.path,
                         len(live_entries(subscribers.values())))
    finally:
        await sub.unsubscribe()
        await event_log.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--nats-url", default=os.environ.get("CAIRN_NATS_URL", ""))
    parser.add_argument("--creds", type=Path, required=True, help="this process's NATS credentials file")
    parser.add_argument("--users-file", type=Path, required=True, help="the file the node's config includes")
    parser.add_argument("--static-creds-dir", type=Path, required=True, help="every role's <role>.json")
    parser.add_argument("--ports-dir", type=Path, required=True, help="the node's ports_file_dir (finds its pid)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        users = UsersFile(args.users_file, args.static_creds_dir, args.ports_dir)
        await follow(args.nats_url, NatsCredentials.read(args.creds), users, stop)

    asyncio.run(run())


if __name__ == "__main__":
    main()
