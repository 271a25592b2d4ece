"""Two replicas each of the scheduler, deployments, monitor and pipelines behind one gateway.

Why: these services also run loops that must run once (the dispatcher, the reconciler, the
pipelines engine and triggers, the monitor's actions); those run on the holder of a lease
(cairn.kernel.leader), while each replica keeps a read model of its own and takes commands that
only the event log keeps safe. The monitor's inference consumer runs on every replica, each with a
durable and windows of its own, so a second replica must neither split the samples nor fire an
alert twice. The tests write through the gateway (which alternates the replicas) and read back
through the other replica, SIGKILL one replica of each under load, and compare the replicas' read
models with each other and with a rebuild. The platform is the harness's (real nats-server, real
service processes); each second replica is one more process with ``CAIRN_REPLICA=b``.
"""

from __future__ import annotations

import functools
import json
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import loopback
import pytest
from monitor_service.monitor_helpers import deployed_project, samples, send, wait_for

from cairn.protocol import H_CAIRN_MIN_SEQ
from cairn.up import REPLICABLE, SERVICES
from cluster.replica_harness import ReplicaSet

from platform_harness import Platform, read_all_events, running, stream_last_seq

REPLICATED = ("scheduler", "deployments", "monitor", "pipelines")
NOWHERE = "no-agent-serves-this"  # jobs stay queued: no agent takes them
JOB = {"command": ["python", "-c", "pass"], "code": None, "queue": NOWHERE}
PIPELINE = json.dumps({"name": "p", "steps": [{"id": "train", "command": ["python", "-c", "pass"], "queue": NOWHERE}]})
RULE = {"name": "errors", "metric": "error_rate", "comparison": ">", "threshold": 0.5, "window": "2s",
        "persistence": {"k": 1, "n": 1}, "cooldown_s": 0}


class Replicated(ReplicaSet):
    """The platform plus a second replica (``<service>-b``) of each service in REPLICATED."""

    def __init__(self, plat: Platform) -> None:
        super().__init__(plat, REPLICATED)

    def urls(self, service: str) -> list[str]:
        return self.urls_of(service)

    def start_b(self, service: str) -> None:
        self.start_replica(service, wait=False)

    def admin(self) -> httpx.Client:
        return httpx.Client(base_url=f"{self.plat.gateway}/api/v1", headers=self.plat.headers, timeout=30)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Replicated]:
    plat = Platform(tmp_path_factory.mktemp("replicas-services"), extra_env={"CAIRN_PIPELINES_TICK_S": "0.2"})
    with running(plat):
        replicated = Replicated(plat)
        for service in REPLICATED:
            replicated.start_b(service)
        replicated.wait_b()
        services: dict[str, Any] = {name: plat.service_url(name) for name in SERVICES}
        services.update({service: replicated.urls(service) for service in REPLICATED})
        plat.service_env["gateway"] = {"CAIRN_SERVICES": json.dumps(services)}
        plat.restart("gateway")
        plat.wait_healthy()
        yield replicated


@pytest.fixture()
def project(cluster: Replicated) -> str:
    with cluster.admin() as admin:
        return deployed_project(admin, f"reps-{uuid.uuid4().hex[:10]}")


def events_of(cluster: Replicated, project: str, event_type: str) -> list[dict[str, Any]]:
    return [e for e in read_all_events(cluster.plat.nats_url) if e["project"] == project and e["type"] == event_type]


def test_cairn_up_replicates_every_service() -> None:
    # metrics replicas: tests/cluster/test_replicas_metrics.py
    assert set(REPLICATED) | {"registry", "lineage", "artifacts", "metrics"} == set(REPLICABLE) == set(SERVICES)


def test_writes_and_reads_through_the_sdk_alternate_replicas_and_see_each_write(cluster: Replicated,
                                                                               project: str) -> None:
    # the gateway alternates each service's replicas, so each read goes to the one that did not
    # write; the SDK names its last write (Cairn-Min-Seq) and that replica waits for it
    with cluster.client() as client:
        api = f"/api/v1/{{}}/projects/{project}"
        for i in range(6):
            name = f"d{i}"
            client.request("POST", api.format("deployments") + "/deployments",
                           json={"name": name, "environment": "dev", "model": "fraud-model", "version": 1,
                                 "replicas": 0, "sample_rate": 1.0})
            assert client.request("GET", api.format("deployments") + f"/deployments/{name}")["name"] == name
            rule = client.request("POST", api.format("monitor") + f"/deployments/{name}/rules", json=RULE)
            rules = client.request("GET", api.format("monitor") + f"/deployments/{name}/rules")["rules"]
            assert [r["id"] for r in rules] == [rule["id"]]
            job = client.request("POST", api.format("scheduler") + "/jobs", json=JOB)
            assert client.request("GET", api.format("scheduler") + f"/jobs/{job['id']}")["status"] == "queued"
            run = client.request("POST", api.format("pipelines") + "/runs", json={"pipeline": PIPELINE})
            assert client.request("GET", api.format("pipelines") + f"/runs/{run['id']}")["id"] == run["id"]


def test_every_monitor_replica_counts_every_sample_and_an_alert_fires_once(cluster: Replicated,
                                                                            project: str) -> None:
    with cluster.admin() as admin:
        admin.post(f"/monitor/projects/{project}/deployments/fraud/rules", json=RULE).raise_for_status()
        bad = (time.time() // 2) * 2 + 2  # the next 2 s window: its samples are in before it closes
        batch = samples(project, "fraud", bad + 0.5, 8, status=503) + samples(project, "fraud", bad + 0.6, 2, start=8)
        for sample in batch:  # a message each: replicas sharing a consumer would split them
            send(admin, project, "fraud", [sample])

    def closed(url: str) -> list[dict[str, Any]]:
        resp = loopback.get(f"{url}/projects/{project}/deployments/fraud/windows", timeout=30,
                            params={"size": "2s", "since": "1h"}, headers=cluster.plat.service_headers)
        assert resp.status_code == 200, resp.text
        return [w for w in resp.json()["windows"] if w["start"] == bad]

    for url in cluster.urls("monitor"):  # each replica's windows hold every sample (none split off)
        [window] = wait_for(functools.partial(closed, url), f"the bad window closed on {url}")
        assert window["requests"] == 10 and window["errors"] == 8, window
    for url in cluster.urls("monitor"):
        def open_alerts(url: str = url) -> list[dict[str, Any]]:
            resp = loopback.get(f"{url}/projects/{project}/alerts", params={"state": "open"}, timeout=30,
                                headers=cluster.caught_up())
            return list(resp.json()["alerts"])
        assert len(wait_for(open_alerts, f"the open alert on {url}")) == 1
    # both replicas decided the window; the alert's expected sequence let one fire it
    assert len(events_of(cluster, project, "alert.fired")) == 1
    # and each counted the samples into windows of its own
    data = cluster.plat.data_dir / "monitor"
    assert (data / "windows.sqlite3").exists() and (data / "replicas" / "b" / "windows.sqlite3").exists()


def test_killing_one_replica_of_each_under_load_loses_no_acknowledged_write(cluster: Replicated,
                                                                             project: str) -> None:
    acknowledged: dict[str, list[str]] = {"job.submitted": [], "deployment.created": [],
                                          "alert_rule.created": [], "pipeline_run.started": []}
    failures: list[BaseException] = []
    lock = threading.Lock()
    api = f"/api/v1/{{}}/projects/{project}"

    def note(kind: str, ident: str) -> None:
        with lock:
            acknowledged[kind].append(ident)

    def write(writer: int, count: int) -> None:
        # no SDK retries: a request the dead replica held goes again only by the gateway's retry
        # (every SDK write has an Idempotency-Key), so each answer here is the platform's own
        with cluster.client(retries=0) as client:
            try:
                for i in range(count):
                    name = f"k{writer}-{i}"
                    client.request("POST", api.format("deployments") + "/deployments",
                                   json={"name": name, "environment": "dev", "model": "fraud-model",
                                         "version": 1, "replicas": 0, "sample_rate": 1.0})
                    note("deployment.created", name)
                    rule = client.request("POST", api.format("monitor") + f"/deployments/{name}/rules", json=RULE)
                    note("alert_rule.created", rule["id"])
                    note("job.submitted", client.request("POST", api.format("scheduler") + "/jobs", json=JOB)["id"])
                    run = client.request("POST", api.format("pipelines") + "/runs", json={"pipeline": PIPELINE})
                    note("pipeline_run.started", run["id"])
                    assert client.request("GET", api.format("scheduler") + "/jobs",
                                          params={"limit": 1000})["jobs"], "no jobs listed"
            except BaseException as err:  # noqa: BLE001 - reported by the test below
                failures.append(err)

    writers = [threading.Thread(target=write, args=(n, 8)) for n in range(2)]
    for writer in writers:
        writer.start()
    deadline = time.monotonic() + 120
    while len(acknowledged["pipeline_run.started"]) < 3 and time.monotonic() < deadline and not failures:
        time.sleep(0.01)
    for service in REPLICATED:
        cluster.plat.kill(f"{service}-b")  # SIGKILL, mid-load
    for writer in writers:
        writer.join(timeout=240)
    assert not failures, failures
    assert all(len(ids) == 16 for ids in acknowledged.values()), acknowledged
    # the client's own writes (the pipelines engine submits the runs' steps as jobs of its own)
    log = [e for e in read_all_events(cluster.plat.nats_url)
           if e["project"] == project and not e["actor"].startswith("service:")]
    for kind, ids in acknowledged.items():
        if kind == "deployment.created":
            ids = [*ids, "fraud"]  # the fixture's
        # every acknowledged write exactly once, and nothing unacknowledged
        assert Counter(e["aggregate_id"] for e in log if e["type"] == kind) == dict.fromkeys(ids, 1), kind
    for service in REPLICATED:  # back with its own read model and consumer: it catches up
        cluster.start_b(service)
    cluster.wait_b()
    resp = loopback.get(f"{cluster.urls('scheduler')[1]}/projects/{project}/jobs", params={"limit": 1000},
                        timeout=30, headers=cluster.caught_up())
    assert resp.status_code == 200, resp.text
    assert {j["id"] for j in resp.json()["jobs"]} >= set(acknowledged["job.submitted"])


def settled_hashes(cluster: Replicated, urls: list[str], rebuild: str | None = None) -> list[str]:
    """The content hashes of ``urls`` (and of a rebuild of ``rebuild``) taken while the log did
    not move: the pipelines engine may still be appending, so a pair straddling an append is
    taken again (with a deadline)."""
    deadline = time.monotonic() + 60
    while True:
        before = stream_last_seq(cluster.plat)
        headers = {**cluster.plat.service_headers, H_CAIRN_MIN_SEQ: str(before)}
        answers = [loopback.get(f"{url}/admin/content-hash", headers=headers, timeout=60) for url in urls]
        if rebuild is not None:
            answers.append(loopback.post(f"{rebuild}/admin/rebuild", headers=headers, timeout=120))
        assert all(r.status_code == 200 for r in answers), [r.text for r in answers]
        if stream_last_seq(cluster.plat) == before:
            return [r.json()["content_hash"] for r in answers]
        assert time.monotonic() < deadline, "the event log kept moving"


def test_each_services_replicas_read_models_equal_each_other_and_a_rebuild(cluster: Replicated) -> None:
    cluster.wait_b()
    for service in REPLICATED:
        a, b = cluster.urls(service)
        hash_a, hash_b, rebuilt = settled_hashes(cluster, [a, b], rebuild=b)
        assert hash_a == hash_b == rebuilt, service
