"""System metrics for a run: CPU, memory, disk and network I/O and, when NVML is present, GPU
utilisation, memory and power, sampled every ``interval_s`` seconds as ``system/*`` metrics.

On by default; off with ``start_run(..., system_metrics=False)`` or ``CAIRN_SYSTEM_METRICS=0``;
the interval comes from ``CAIRN_SYSTEM_METRICS_INTERVAL_S`` (default 10). Sampling runs on its own
daemon thread and only appends to the run's metric buffer, so it never blocks training.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import Any

from cairn import nvml
from cairn.sdk.metrics import MetricsLogger

log = logging.getLogger(__name__)


def enabled_by_default() -> bool:
    return os.environ.get("CAIRN_SYSTEM_METRICS", "1").lower() not in ("0", "false", "no", "off")


def default_interval() -> float:
    return float(os.environ.get("CAIRN_SYSTEM_METRICS_INTERVAL_S", "10"))


class SystemMetricsSampler:
    """Samples the machine into a ``MetricsLogger`` until ``stop()``."""

    def __init__(self, metrics: MetricsLogger, interval_s: float | None = None) -> None:
        import psutil  # an SDK dependency; imported here so a broken install only disables sampling

        self._psutil = psutil
        self.metrics = metrics
        self.interval_s = interval_s or default_interval()
        self._stop = threading.Event()
        self._step = 0
        self._last: tuple[float, Any, Any] | None = None
        self._gpus = nvml.open_gpus()
        self._thread = threading.Thread(target=self._run, name="cairn-system-metrics", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while True:
            try:
                self.sample()
            except Exception as err:  # noqa: BLE001 - a failing probe must never hurt training
                log.debug("system metrics sample failed: %s", err)
            if self._stop.wait(self.interval_s):
                return

    def sample(self) -> dict[str, float]:
        """Take one sample and queue it; returns what was logged."""
        ps = self._psutil
        now = time.monotonic()
        memory = ps.virtual_memory()
        values: dict[str, float] = {"system/cpu_percent": ps.cpu_percent(interval=None),
                                    "system/memory_percent": memory.percent,
                                    "system/memory_used_bytes": float(memory.total - memory.available)}
        disk, net = ps.disk_io_counters(), ps.net_io_counters()
        if self._last is not None and disk is not None and net is not None:
            then, old_disk, old_net = self._last
            dt = max(now - then, 1e-6)
            values["system/disk_read_bytes_per_s"] = (disk.read_bytes - old_disk.read_bytes) / dt
            values["system/disk_write_bytes_per_s"] = (disk.write_bytes - old_disk.write_bytes) / dt
            values["system/net_sent_bytes_per_s"] = (net.bytes_sent - old_net.bytes_sent) / dt
            values["system/net_recv_bytes_per_s"] = (net.bytes_recv - old_net.bytes_recv) / dt
        self._last = (now, disk, net)
        values.update(nvml.sample(self._gpus))
        values = {key: float(value) for key, value in values.items()}
        self.metrics.log_many(values, self._step)
        self._step += 1
        return values
