"""Failure tests: a Cairn cluster on network-namespace hosts, killed, cut off and restarted.

Three core hosts (nats-server of a 3-node TLS JetStream cluster, a registry and a lineage replica,
a gateway; the singleton services on h1) and a leaf site with an agent (tests/cluster/
cluster_harness.py), under a client load through the gateways that records every acknowledged
write (cluster_load.py). The scenarios run in sequence on one cluster, each followed by the same
checks (``check_everything``): every acknowledged write is in the event log exactly once and in
the read models, the registry and lineage replicas hash equal to a rebuild, no job ran twice at
one attempt. The time during which writes failed is printed, never asserted.

Not here: killing the scheduler leader (leader election, part B of issue 26, has not landed).
Skipped only where network namespaces cannot be made (not root)."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import loopback
import pytest

from cairn.kernel.eventlog import connect
from cairn.kernel.natsauth import NatsCredentials
from cairn.kernel.natstls import client_tls_context
from cairn.protocol import EVENTS_STREAM, H_CAIRN_MIN_SEQ, NATS_TLS_CA_ENV

from cluster.cluster_harness import CORE, DEADLINE_S, REPLICATED, SITE, Cluster
from cluster.cluster_load import JOB_QUEUE, Load
from cluster.netns import Network, netns_possible

WHY_NOT = netns_possible() if sys.platform == "linux" else "network namespaces are Linux only"
pytestmark = pytest.mark.skipif(WHY_NOT is not None, reason=f"failure tests need network namespaces: {WHY_NOT}")

# how long scenario 2 keeps a host cut off (the issue says 20 s; shorter keeps the suite's time)
CUT_OFF_S = float(os.environ.get("CAIRN_TEST_CUT_OFF_S", "10"))
PROJECT = "failures"
windows: dict[str, float] = {}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    root = tmp_path_factory.mktemp("netns-cluster")
    net = Network.make([*CORE, SITE])
    state = Cluster(root, net)
    try:
        state.configure()
        started = time.monotonic()
        state.start()
        print(f"\ncluster of {len(CORE)} hosts and a leaf site ready in {time.monotonic() - started:.1f}s")
        yield state
    finally:
        state.stop()
        net.close()
        if windows:
            print("write unavailability windows: " + ", ".join(f"{k} {v:.1f}s" for k, v in windows.items()))


@pytest.fixture(scope="module")
def load(cluster: Cluster) -> Load:
    load = Load(cluster.gateways(), cluster.token, PROJECT)
    load.call("POST", "/registry/projects", json={"name": PROJECT})
    return load


def test_the_cluster_takes_writes_through_every_gateway(cluster: Cluster, load: Load) -> None:
    for writer in range(len(CORE)):
        load.round(0, writer)
    assert len(load.acked.runs) == len(CORE)
