"""The metrics service's live parts and settings, kept on ``app.state.metrics``."""

from __future__ import annotations

from pathlib import Path

import httpx
from nats.aio.client import Client as NATS

from cairn.kernel.errors import NotFound, Unavailable
from cairn.kernel.eventlog import EventLog
from cairn.kernel.identity import Signer
from cairn.kernel.settings import ServiceSettings
from cairn.services.metrics.store import MetricsStore
from cairn.services.metrics.writer import MetricsWriter, Tail


class MetricsSettings(ServiceSettings):
    """Environment: CAIRN_NATS_URL, CAIRN_DATA_DIR, CAIRN_HOST, CAIRN_PORT, CAIRN_REGISTRY_URL (runs are
    checked there; empty skips the check), CAIRN_MAX_BATCH_POINTS, CAIRN_MAX_BATCH_BYTES,
    CAIRN_MAX_TAIL_POINTS (acked but unwritten points held for reads before ingest answers 503),
    CAIRN_COMPACT_AFTER (small parts per run that trigger a merge), CAIRN_WRITE_INTERVAL_S (how long
    the writer lets batches gather between Parquet writes when it is not behind; reads see the
    batches meanwhile)."""

    registry_url: str = ""
    max_batch_points: int = 10_000
    max_batch_bytes: int = 4 << 20
    max_tail_points: int = 2_000_000
    compact_after: int = 8
    write_interval_s: float = 0.2


class MetricsRuntime:
    """NATS, the SQLite bookkeeping, the tail of unwritten points, the writer, the run check, and the
    event log that summaries are announced on."""

    def __init__(self, settings: MetricsSettings, nc: NATS, store: MetricsStore, writer: MetricsWriter,
                 tail: Tail, root: Path, signer: Signer, events: EventLog | None = None) -> None:
        self.settings = settings
        self.signer = signer
        self.nc = nc
        self.js = nc.jetstream(timeout=10)
        self.store = store
        self.writer = writer
        self.tail = tail
        self.root = root
        self.events = events
        self.http = httpx.AsyncClient(timeout=10)
        self.known_runs: set[tuple[str, str]] = set()

    async def check_run(self, project: str, run_id: str) -> None:
        """404 unless the registry knows the run; positive answers are cached (runs are never deleted)."""
        if not self.settings.registry_url or (project, run_id) in self.known_runs:
            return
        try:
            resp = await self.http.get(f"{self.settings.registry_url}/projects/{project}/runs/{run_id}",
                                       headers=self.signer.internal())
        except httpx.HTTPError as err:
            raise Unavailable(f"the registry is not reachable to check run {run_id!r} ({type(err).__name__}); "
                              "retry shortly", details={"retry_after": 1}) from None
        if resp.status_code == 404:
            raise NotFound(f"run {run_id!r} does not exist in project {project!r}; create it first",
                           details={"project": project, "run_id": run_id})
        if resp.status_code != 200:
            raise Unavailable(f"the registry answered {resp.status_code} checking run {run_id!r}; retry shortly",
                              details={"retry_after": 1})
        self.known_runs.add((project, run_id))
