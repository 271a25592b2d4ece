"""The agent process: registers with the scheduler (HTTP, through the gateway, with a site-admin
or service-account token), takes assignments pushed over NATS, runs them, reports back over NATS
(request/reply, retried until the scheduler answers), and sends heartbeats."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import socket
import sys
import uuid
from pathlib import Path
from typing import Any

from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeout

from cairn.agent.attempt import AGENT_STOPPING, Attempt
from cairn.agent.link import NatsRetriesFilter, PlatformLink
from cairn.agent.workspace import Workspace
from cairn.kernel.eventlog import connect
from cairn.kernel.natsauth import AGENT_INBOX_PREFIX, NatsCredentials
from cairn.protocol import LOG_END_HEADER as END_HEADER
from cairn.sdk.client import ApiError, CannotReach, Client

# How long each try of a report waits for an answer. Any scheduler replica answers (a NATS queue
# group), and NATS still hands a frozen one (SIGSTOP, a paused VM, a long GC) its share of the
# requests until its connection is seen dead, minutes later: short first waits send the retry on
# to another replica soon, and the longer later ones leave a slow but live replica time to answer
# (a report is idempotent: the same one twice is decided once). Each try goes to a member picked at
# random, so with one of two frozen three tries in a row reach it one time in eight: three short
# ones (was one; with 2, 5, 10 s a report lost 17 s there, and a job's two reports now and then
# spent the leader test's whole minute).
REPORT_WAITS_S = (2.0, 2.0, 2.0, 5.0, 10.0)

log = logging.getLogger("cairn.agent")


class Agent:
    def __init__(self, client: Client, *, queue: str, capacity: dict[str, Any], name: str | None = None,
                 work_dir: Path, host: str | None = None, nats_url: str | None = None, grace_s: float = 10.0,
                 system_metrics_s: float = 10.0) -> None:
        self.client = client
        self.queue = queue
        self.capacity = capacity
        self.name = name or socket.gethostname()
        self.agent_id = f"{self._slug(self.name)}-{uuid.uuid4().hex[:10]}"
        self.work_dir = work_dir
        self.host = host or "127.0.0.1"
        self.nats_url = nats_url
        self.grace_s = grace_s
        self.system_metrics_s = system_metrics_s
        self.workspace = Workspace(work_dir, client)
        self.attempts: dict[tuple[str, int, int], Attempt] = {}
        self.seen: dict[tuple[str, int, int], None] = {}  # assignments taken (bounded, oldest dropped)
        self.stopped: dict[tuple[str, int], None] = {}  # attempts stopped before their assignment came
        self.finished: dict[tuple[str, int, int], Any] = {}  # ended attempts: (describe(), exit report)
        self._reporting: set[tuple[str, int, int]] = set()  # ends being reported again
        self.nc: Any = None
        self.config: dict[str, Any] = {}
        self._stopping = asyncio.Event()
        self.link = PlatformLink()  # one log line per lost/back, not one per retry
        self._tasks: set[asyncio.Task[None]] = set()

    @staticmethod
    def _slug(name: str) -> str:
        slug = "".join(c if c.isalnum() or c in "-_" else "-" for c in name.lower())[:40]
        return slug or "agent"

    # --- lifecycle -------------------------------------------------------------------------------

    def register(self) -> dict[str, Any]:
        answer = self.client.request("POST", "/api/v1/scheduler/agents", json={
            "agent_id": self.agent_id, "name": self.name, "queue": self.queue, "host": self.host,
            "capacity": self.capacity})
        self.link.back("gateway")
        return answer

    async def _register_until_answered(self) -> dict[str, Any] | None:
        """Register, waiting for a gateway that is not up yet (an agent may start first, or
        outlive a restart of ``cairn up``); None when asked to stop meanwhile."""
        delay = 0.2
        while True:
            try:
                return await asyncio.to_thread(self.register)
            except CannotReach as err:
                self.link.lost("gateway", err.reason)
            try:
                await asyncio.wait_for(self._stopping.wait(), delay)
                return None
            except asyncio.TimeoutError:
                delay = min(delay * 2, 2.0)

    async def run(self) -> None:
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self.loop = asyncio.get_running_loop()
        self._logs: asyncio.Queue[tuple[str, bytes, bool]] = asyncio.Queue()
        config = await self._register_until_answered()
        if config is None:
            return
        self.config = config
        # the NATS user comes from the registration answer and stays in this process's memory: never
        # in a file, argv or the environment that jobs inherit (the scheduler makes the log stream)
        creds = self.config.get("nats_credentials")
        self.nc = await connect(self.nats_url or self.config["nats_url"], name=f"cairn-agent-{self.agent_id}",
                                credentials=NatsCredentials.from_dict(creds, source="the registration answer")
                                if creds else None, inbox_prefix=AGENT_INBOX_PREFIX)
        await self.nc.subscribe(self.config["subject"], cb=self._on_message)
        await self.nc.flush()
        await asyncio.to_thread(self.register)  # again, now that we listen: the scheduler may resend
        log.info("agent=%s queue=%s capacity=%s registered", self.agent_id, self.queue, self.capacity)
        print(f"cairn agent {self.agent_id} on queue {self.queue!r} ready", flush=True)
        beat = asyncio.create_task(self._heartbeats())
        publisher = asyncio.create_task(self._publish_logs())
        try:
            await self._stopping.wait()
        finally:
            beat.cancel()
            await self._say_leaving()
            for attempt in list(self.attempts.values()):
                attempt.stop(AGENT_STOPPING)
            if self._tasks:
                await asyncio.wait(self._tasks, timeout=self.grace_s + 10)
            while not self._logs.empty():
                await asyncio.sleep(0.05)
            publisher.cancel()
            await self.nc.drain()

    async def _say_leaving(self) -> None:
        """Tell the scheduler first, so it assigns nothing more here while we stop."""
        payload = json.dumps({"kind": "leaving", "agent_id": self.agent_id}).encode()
        try:
            await self.nc.request(self.config["report_subject"], payload, timeout=5)
        except Exception as err:  # noqa: BLE001 - the lease runs out anyway
            log.warning("could not say goodbye: %r", err)

    def request_stop(self) -> None:
        self._stopping.set()

    async def _heartbeats(self) -> None:
        while True:
            beat = {"agent_id": self.agent_id, "running": [a.describe() for a in self.attempts.values()]}
            try:
                await self.nc.publish(self.config["heartbeat_subject"], json.dumps(beat).encode())
            except Exception as err:  # noqa: BLE001 - NATS reconnects; the next beat goes through
                self.link.lost("nats", err)
            else:
                # a publish while reconnecting is buffered, not refused: the connection's state says
                if self.nc.is_connected:
                    self.link.back("nats")
                else:
                    self.link.lost("nats", "disconnected")
            await asyncio.sleep(float(self.config["heartbeat_s"]))

    # --- messages from the scheduler -------------------------------------------------------------

    async def _on_message(self, msg: Any) -> None:
        try:
            message = json.loads(msg.data)
        except ValueError:
            return
        kind = message.get("type")
        if self._stopping.is_set() and kind in ("assign", "reregister"):
            return  # leaving: take no new work
        if kind == "assign":
            key = (message["job_id"], int(message["attempt"]), int(message["rank"]))
            if key in self.seen or key[:2] in self.stopped:
                self._report_again(key)  # a resent assignment we already ran: its end again, if known
                return  # a resent assignment we already run (or ran), or one stopped already
            _remember(self.seen, key)
            attempt = Attempt(self, message)
            self.attempts[key] = attempt
            task = asyncio.create_task(self._run_attempt(attempt))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        elif kind == "stop":
            _remember(self.stopped, (message["job_id"], int(message["attempt"])))
            for key, attempt in list(self.attempts.items()):
                if key[0] == message["job_id"] and key[1] == int(message["attempt"]):
                    attempt.stop(message.get("reason", "stop"))
        elif kind == "reregister":
            try:
                await asyncio.to_thread(self.register)
            except (ApiError, OSError) as err:
                log.warning("re-registering failed: %s", err)

    # --- running attempts ------------------------------------------------------------------------

    def publish_log(self, subject: str, data: bytes, *, end: bool = False) -> None:
        """Queue a log chunk (callable from any thread); one task publishes them in order."""
        self.loop.call_soon_threadsafe(self._logs.put_nowait, (subject, data, end))

    async def _publish_logs(self) -> None:
        while True:
            subject, data, end = await self._logs.get()
            try:
                await self.nc.publish(subject, data, headers={END_HEADER: "1"} if end else None)
            except Exception as err:  # noqa: BLE001 - the log file (kept as an artifact) has it all
                self.link.lost("nats", err)

    async def _run_attempt(self, attempt: Attempt) -> None:
        sampler = None
        try:
            if attempt.a["rank"] == 0 and self.system_metrics_s > 0:
                sampler = await asyncio.to_thread(self._start_system_metrics, attempt)
            result = await attempt.run()
        except Exception as err:  # noqa: BLE001 - the scheduler must hear about every end
            log.exception("attempt %s failed", attempt.key)
            result = {"exit_code": None, "reason": "error", "message": f"agent error: {err!r}"}
        finally:
            if sampler is not None:
                await asyncio.to_thread(self._stop_system_metrics, sampler)
        attempt.finish_log()
        try:
            if attempt.log_path.exists() and attempt.log_path.stat().st_size:  # no output: nothing to keep
                await asyncio.to_thread(self._keep_log, attempt)
        except Exception as err:  # noqa: BLE001 - a log upload failure must not lose the result
            log.warning("keeping the log of %s failed: %r", attempt.key, err)
        final = {"kind": "exited", **result}
        _remember(self.finished, attempt.key, (attempt.describe(), final), limit=10_000)
        await self.report(attempt, final)
        self.attempts.pop(attempt.key, None)

    def _report_again(self, key: tuple[str, int, int]) -> None:
        """The scheduler sent an attempt that ended here again: it has not taken in how it ended
        (the report was lost, or refused by a replica that had not seen the attempt yet), so
        report the end again; without this the job would stay assigned to an attempt nobody runs."""
        final = self.finished.get(key)
        if final is None or key in self.attempts or key in self._reporting:
            return
        self._reporting.add(key)

        async def again() -> None:
            await self._send_report(*final)

        task = asyncio.create_task(again())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        task.add_done_callback(lambda _: self._reporting.discard(key))

    def _start_system_metrics(self, attempt: Attempt) -> Any:
        from cairn.sdk.metrics import MetricsLogger
        from cairn.sdk.system_metrics import SystemMetricsSampler

        logger = MetricsLogger(self.client.url, self.client.token, attempt.a["project"], attempt.a["run_id"])
        try:
            return logger, SystemMetricsSampler(logger, self.system_metrics_s)
        except ImportError:
            logger.close()
            return None

    @staticmethod
    def _stop_system_metrics(sampler: Any) -> None:
        logger, system = sampler
        system.stop()
        logger.close(timeout=30)

    def _keep_log(self, attempt: Attempt) -> None:
        suffix = f"-rank-{attempt.a['rank']}" if attempt.a["world_size"] > 1 else ""
        self.client.artifacts.log_artifact(attempt.a["project"], attempt.a["run_id"], attempt.log_path,
                                           name=f"logs/attempt-{attempt.a['attempt']}{suffix}.log")

    async def report_started(self, attempt: Attempt, started_at: float) -> None:
        answer = await self.report(attempt, {"kind": "started", "started_at": started_at})
        if not answer.get("ok"):
            attempt.stop(answer.get("code", "refused"))

    async def report(self, attempt: Attempt, body: dict[str, Any]) -> dict[str, Any]:
        """Send a report until the scheduler answers (it may be restarting); a refusal (a stale
        attempt) is an answer too."""
        return await self._send_report(attempt.describe(), body)

    async def _send_report(self, described: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
        key = (described["job_id"], described["attempt"], described["rank"])
        payload = json.dumps({**described, "agent_id": self.agent_id, **body}).encode()
        delay, tries = 0.1, 0
        while True:
            wait = REPORT_WAITS_S[min(tries, len(REPORT_WAITS_S) - 1)]
            tries += 1
            try:
                reply = await self.nc.request(self.config["report_subject"], payload, timeout=wait)
                answer = json.loads(reply.data)
                if not answer.get("retry"):
                    if not answer.get("ok"):
                        log.warning("report %s refused: %s", key, answer.get("message"))
                    return answer
            except (NatsTimeout, NoRespondersError, asyncio.TimeoutError):
                pass
            except Exception as err:  # noqa: BLE001 - keep trying while NATS reconnects
                self.link.lost("nats", err)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)


def _remember(seen: dict[Any, Any], key: Any, value: Any = None, limit: int = 100_000) -> None:
    seen[key] = value
    if len(seen) > limit:
        del seen[next(iter(seen))]


def _watch_children_with_pidfds(loop: asyncio.AbstractEventLoop) -> None:
    """Python 3.11 waits for each child process in a thread of its own (a thread start per job);
    a pidfd in the event loop does it without one (3.12 does this by itself)."""
    if sys.version_info >= (3, 12) or not hasattr(os, "pidfd_open"):
        return
    try:
        os.close(os.pidfd_open(os.getpid()))
    except OSError:  # a kernel before 5.3
        return
    watcher = asyncio.PidfdChildWatcher()
    watcher.attach_loop(loop)
    asyncio.get_event_loop_policy().set_child_watcher(watcher)


def run_agent(agent: Agent) -> None:
    logging.basicConfig(level=os.environ.get("CAIRN_LOG_LEVEL", "info").upper(),
                        format="ts=%(asctime)s level=%(levelname)s logger=%(name)s %(message)s")
    logging.getLogger("nats.aio.client").addFilter(NatsRetriesFilter(agent.link))

    async def main() -> None:
        loop = asyncio.get_running_loop()
        _watch_children_with_pidfds(loop)
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, agent.request_stop)
        await agent.run()

    asyncio.run(main())
