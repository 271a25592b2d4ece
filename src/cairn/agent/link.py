"""The agent's view of its link to the platform, logged once per change of state.

While the gateway or NATS is away, nats-py reports every reconnect attempt (with a traceback) and
each heartbeat or registration attempt fails: an outage of 40 s used to write ~80 tracebacks. The
link turns those attempts into one ``link=lost`` line when the first fails and one ``link=back``
line when an attempt succeeds again, so the log says what happened and for how long."""

from __future__ import annotations

import logging
import threading
import time

log = logging.getLogger("cairn.agent")


class PlatformLink:
    """Up or down, changed by what the agent observes (thread-safe: registration runs in a thread)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._lost_at: float | None = None
        self.failures = 0  # attempts while down, reported in the "back" line

    @property
    def is_up(self) -> bool:
        return self._lost_at is None

    def lost(self, what: str, reason: object) -> None:
        """An attempt to reach the platform failed: log the first failure only."""
        with self._lock:
            self.failures += 1
            if self._lost_at is not None:
                return
            self._lost_at = time.monotonic()
        log.warning("link=lost what=%s reason=%r (retrying; one line when it is back)", what, str(reason))

    def back(self, what: str) -> None:
        """An attempt succeeded: log it if the link was down."""
        with self._lock:
            if self._lost_at is None:
                return
            down_s, failures = time.monotonic() - self._lost_at, self.failures
            self._lost_at, self.failures = None, 0
        log.warning("link=back what=%s down_s=%.1f failed_attempts=%d", what, down_s, failures)


class NatsRetriesFilter(logging.Filter):
    """Turn nats-py's per-attempt error records (each with a traceback) into a state change of
    the link: the records are dropped, the first one marks the link lost."""

    def __init__(self, link: PlatformLink) -> None:
        super().__init__()
        self.link = link

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and record.exc_info[1] is not None:
            self.link.lost("nats", record.exc_info[1])
            return False
        return True
