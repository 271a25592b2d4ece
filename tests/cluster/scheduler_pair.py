"""Two scheduler processes on one platform, for the leader tests: the platform's own (replica
"a", behind the gateway) and a second one (replica "b", its own port and data directory, the
same NATS and keys)."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
from scheduler.agent_pool import wait_until
from service_fork import ServiceProcess

from cairn.natsserver import free_ports

from platform_harness import Platform

DISPATCHER = "scheduler.dispatcher"


class Replica:
    """One scheduler process of the pair: the platform's own (replica "a", behind the gateway)
    or a second one (replica "b", its own port and data directory, the same NATS and keys)."""

    def __init__(self, plat: Platform, name: str) -> None:
        self.plat = plat
        self.name = name
        self.port = plat.ports["scheduler"] if name == "a" else free_ports(1)[0]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def proc(self):  # type: ignore[no-untyped-def]
        return self.plat.procs["scheduler" if self.name == "a" else "scheduler-b"]

    def start(self, **extra_env: str) -> None:
        """Start the process; ``extra_env`` (replica "b" only) adds to its environment."""
        if self.name == "a":
            self.plat.start_service("scheduler")
            return
        env = {**self.plat._env("scheduler"), "CAIRN_REPLICA": "b", "CAIRN_PORT": str(self.port),
               "CAIRN_DATA_DIR": str(self.plat.root / "replica-b"),
               "CAIRN_SERVICE_KEY_FILE": str(self.plat.data_dir / "secrets" / "service.key"), **extra_env}
        self.plat.procs["scheduler-b"] = ServiceProcess("scheduler", env, self.plat.root / "scheduler-b.log")

    def health(self) -> dict | None:
        try:
            resp = httpx.get(f"{self.url}/healthz", headers=self.plat.service_headers, timeout=2)
        except httpx.HTTPError:
            return None
        return resp.json() if resp.status_code == 200 else None

    def leads(self) -> bool:
        report = self.health()
        return bool(report and any(lease["name"] == DISPATCHER for lease in report["leases"]))

    def submit(self, project: str, queue: str, tmp: Path) -> str:
        marker = tmp / f"ran-{time.monotonic_ns()}"
        resp = httpx.post(f"{self.url}/projects/{project}/jobs", headers=self.plat.service_headers, timeout=30,
                          json={"command": ["sh", "-c", f"echo $CAIRN_ATTEMPT >> {marker}"],
                                "queue": queue})
        assert resp.status_code == 201, resp.text
        return str(resp.json()["id"])

    def wait_succeeded(self, project: str, job_id: str) -> None:
        def done() -> bool:
            job = httpx.get(f"{self.url}/projects/{project}/jobs/{job_id}", headers=self.plat.service_headers,
                            timeout=10).json()
            assert job["status"] not in ("failed", "cancelled"), job
            return bool(job["status"] == "succeeded")

        wait_until(done, timeout=60, what=f"job {job_id} to succeed")
