"""A platform plus a second replica (``<service>-b``, ``CAIRN_REPLICA=b``) of some of its services,
each on a port of its own, for the replica tests (the module's fixture points the gateway at
both replicas through ``CAIRN_SERVICES``)."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

from monitor_service.monitor_helpers import wait_for
from service_fork import ServiceProcess

from cairn.natsserver import free_ports, wait_for_tcp
from cairn.protocol import H_CAIRN_MIN_SEQ
from cairn.sdk.client import Client

from platform_harness import Platform, stream_last_seq

REPLICA_B = "b"
START_S = 120  # a replica's start under a loaded machine


class ReplicaSet:
    def __init__(self, plat: Platform, services: tuple[str, ...]) -> None:
        self.plat = plat
        self.ports_b = dict(zip(services, free_ports(len(services)), strict=True))

    def urls_of(self, service: str) -> list[str]:
        """The service's two replicas: the platform's, then ``b``."""
        return [self.plat.service_url(service), f"http://127.0.0.1:{self.ports_b[service]}"]

    def start_replica(self, service: str, *, wait: bool = True) -> None:
        """Replica ``b``: the service's environment with a port and a replica name of its own (so
        its own read model and durable consumer), as a process of the platform's."""
        env = {**self.plat._env(service), "CAIRN_PORT": str(self.ports_b[service]), "CAIRN_REPLICA": REPLICA_B}
        log = self.plat.root / f"{service}-b.log"
        if self.plat.forked:
            proc: Any = ServiceProcess(service, env, log)
        else:
            with open(log, "ab") as out:
                proc = subprocess.Popen([sys.executable, "-m", f"cairn.services.{service}"], env=env,
                                        stdout=out, stderr=out)
        self.plat.procs[f"{service}-b"] = proc
        if wait:
            wait_for_tcp("127.0.0.1", self.ports_b[service], timeout=START_S)

    def wait_b(self) -> None:
        for port in self.ports_b.values():
            wait_for_tcp("127.0.0.1", port, timeout=START_S)

    def client(self, **options: Any) -> Client:
        return Client(self.plat.gateway, token=self.plat.token, **options)

    def caught_up(self) -> dict[str, str]:
        """Headers for a direct call to a replica: the signed site admin, and the log's end as
        Cairn-Min-Seq (the replica has applied everything written so far)."""
        return {**self.plat.service_headers, H_CAIRN_MIN_SEQ: str(stream_last_seq(self.plat))}


def wait_until(check: Any, what: str, timeout: float = 60.0) -> Any:
    """``check()``'s first truthy value (monitor_helpers.wait_for, a minute by default)."""
    return wait_for(check, what, timeout)
