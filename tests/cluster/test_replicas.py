"""Two registry replicas behind one gateway: each keeps its own read model, commands stay safe when
both take conflicting ones at once, and a client reads its own writes whichever replica answers.

Why: with replicas, a write lands through one replica's command handler and a read may be served
by another whose projection has not applied it yet; only ``Cairn-Seq``/``Cairn-Min-Seq``
(cairn.kernel.consistency) and the SDK's use of them make "I just wrote it, I can read it" hold.
Concurrency across processes is guarded only by the event log (expected subject sequences and
idempotency keys), never by a lock in one process: the tests send conflicting commands to both
replicas at once. The platform is the harness's (real nats-server, real service processes); the
second replica is one more registry process with ``CAIRN_REPLICA=b`` and the gateway is restarted
with both URLs in ``CAIRN_SERVICES``.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import loopback
import pytest

from cairn.protocol import H_CAIRN_MIN_SEQ, H_CAIRN_SEQ
from cairn.up import SERVICES
from cluster.replica_harness import REPLICA_B, ReplicaSet

from platform_harness import Platform, read_all_events, running, stream_last_seq

WAIT_S = 1  # CAIRN_MIN_SEQ_WAIT_S here: the bounded wait's 503 comes quickly


class Replicated(ReplicaSet):
    """The platform plus the registry's second replica (``registry-b`` among its processes)."""

    def __init__(self, plat: Platform) -> None:
        super().__init__(plat, ("registry",))

    @property
    def urls(self) -> list[str]:
        return self.urls_of("registry")

    def start_b(self) -> None:
        self.start_replica("registry")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Replicated]:
    plat = Platform(tmp_path_factory.mktemp("replicas"), extra_env={"CAIRN_MIN_SEQ_WAIT_S": str(WAIT_S)})
    with running(plat):
        replicated = Replicated(plat)
        replicated.start_b()
        services: dict[str, Any] = {name: plat.service_url(name) for name in SERVICES}
        services["registry"] = replicated.urls
        plat.service_env["gateway"] = {"CAIRN_SERVICES": json.dumps(services)}
        plat.restart("gateway")
        plat.wait_healthy()
        yield replicated


@pytest.fixture()
def project(cluster: Replicated) -> str:
    name = f"rep-{uuid.uuid4().hex[:10]}"
    with cluster.client() as client:
        client.create_project(name)
    return name


def caught_up(cluster: Replicated) -> dict[str, str]:
    return cluster.caught_up()


def events_of(cluster: Replicated, project: str, event_type: str) -> list[dict[str, Any]]:
    return [e for e in read_all_events(cluster.plat.nats_url) if e["project"] == project and e["type"] == event_type]


async def at_once(*calls: tuple[str, str, str, dict[str, Any], dict[str, str]]) -> list[httpx.Response]:
    """(method, replica URL, path, JSON body, headers) requests sent together."""
    async with httpx.AsyncClient(timeout=30) as http:
        return list(await asyncio.gather(*(http.request(method, f"{base}{path}", json=body, headers=headers)
                                           for method, base, path, body, headers in calls)))


def test_a_write_answer_names_its_event_sequence(cluster: Replicated, project: str) -> None:
    with httpx.Client(base_url=f"{cluster.plat.gateway}/api/v1/registry", headers=cluster.plat.headers) as http:
        created = http.post(f"/projects/{project}/runs", json={})
        assert created.status_code == 201, created.text
        # through the gateway to the other replica, which waits until it has applied the write
        read = http.get(f"/projects/{project}/runs/{created.json()['id']}",
                        headers={H_CAIRN_MIN_SEQ: created.headers[H_CAIRN_SEQ]})
        assert read.status_code == 200, read.text
    [event] = events_of(cluster, project, "run.created")
    assert created.headers[H_CAIRN_SEQ] == str(event["sequence"])
    assert H_CAIRN_SEQ not in read.headers  # a read appended nothing


def test_reads_through_the_sdk_see_each_write_whichever_replica_answers(cluster: Replicated, project: str) -> None:
    # the gateway alternates the replicas, so each read goes to the replica that did not write; how
    # far behind that one is varies, so the test also checks that each read named the last write
    named: list[tuple[str, str | None]] = []
    with cluster.client() as client:
        client._http.event_hooks["request"].append(
            lambda request: named.append((request.method, request.headers.get(H_CAIRN_MIN_SEQ))))
        for i in range(25):
            before = client.last_seq
            run = client.create_run(project, tags={"i": str(i)})
            assert client.last_seq > before
            assert client.get_run(project, run["id"])["tags"]["i"] == str(i)
            client.set_run_tag(project, run["id"], "after", str(i))
            assert client.get_run(project, run["id"])["tags"]["after"] == str(i)
            assert any(r["id"] == run["id"] for r in client.search_runs(project, page_size=1000)["runs"])
            assert named[-1] == ("POST", str(client.last_seq))  # the search, after the tag's write
    reads = [seq for method, seq in named if method == "GET"]
    assert len(reads) == 50 and all(seq is not None and int(seq) > 0 for seq in reads)
    unnamed: list[str | None] = []
    with cluster.client(read_your_writes=False) as client:  # turned off: remembers, never sends
        client._http.event_hooks["request"].append(lambda r: unnamed.append(r.headers.get(H_CAIRN_MIN_SEQ)))
        client.create_run(project)
        client.search_runs(project)
    assert client.last_seq > 0 and unnamed == [None, None]


def test_a_plain_http_client_reads_its_writes_through_the_gateways_memory(cluster: Replicated, project: str) -> None:
    with httpx.Client(base_url=f"{cluster.plat.gateway}/api/v1/registry", headers=cluster.plat.headers,
                      timeout=30) as http:
        for i in range(10):
            created = http.post(f"/projects/{project}/runs", json={"tags": {"i": str(i)}})
            assert created.status_code == 201, created.text
            got = http.get(f"/projects/{project}/runs/{created.json()['id']}")
            assert got.status_code == 200 and got.json()["tags"]["i"] == str(i), got.text


def test_an_mlflow_client_that_sends_no_header_reads_its_writes_too(cluster: Replicated, project: str) -> None:
    # MLflow clients know nothing of Cairn-Min-Seq: the gateway remembers the token's last write
    base = f"{cluster.plat.gateway}/mlflow/{project}/api/2.0/mlflow"
    with httpx.Client(base_url=base, headers=cluster.plat.headers, timeout=30) as http:
        experiment = http.get("/experiments/get-by-name", params={"experiment_name": "default"})
        assert experiment.status_code == 200, experiment.text
        experiment_id = experiment.json()["experiment"]["experiment_id"]
        for i in range(10):
            created = http.post("/runs/create", json={"experiment_id": experiment_id, "run_name": f"m{i}"})
            assert created.status_code == 200, created.text
            assert int(created.headers[H_CAIRN_SEQ]) > 0  # the MLflow layer's answer names the write
            run_id = created.json()["run"]["info"]["run_id"]
            logged = http.post("/runs/log-parameter", json={"run_id": run_id, "key": "i", "value": str(i)})
            assert logged.status_code == 200, logged.text
            got = http.get("/runs/get", params={"run_id": run_id})
            assert got.status_code == 200, got.text
            assert {"key": "i", "value": str(i)} in got.json()["run"]["data"]["params"]


def test_a_sequence_the_replica_has_not_reached_is_a_503_with_retry_after(cluster: Replicated, project: str) -> None:
    ahead = stream_last_seq(cluster.plat) + 1000  # no write has made it: the wait must end
    resp = loopback.get(f"{cluster.urls[1]}/projects/{project}", timeout=30,
                        headers={**cluster.plat.service_headers, H_CAIRN_MIN_SEQ: str(ahead)})
    assert resp.status_code == 503, resp.text
    assert resp.headers["retry-after"] == "1"
    assert resp.json()["error"]["details"]["min_seq"] == ahead
    bad = loopback.get(f"{cluster.urls[1]}/projects/{project}", timeout=30,
                       headers={**cluster.plat.service_headers, H_CAIRN_MIN_SEQ: "-1"})
    assert bad.status_code == 400, bad.text


def test_a_model_name_taken_on_both_replicas_at_once_is_created_once(cluster: Replicated, project: str) -> None:
    a, b = cluster.urls
    headers = caught_up(cluster)
    for i in range(6):
        body = {"name": f"model-{i}"}
        answers = asyncio.run(at_once(("POST", a, f"/projects/{project}/models", body, headers),
                                      ("POST", b, f"/projects/{project}/models", body, headers)))
        assert sorted(r.status_code for r in answers) == [201, 409], [r.text for r in answers]
    names = Counter(e["data"]["name"] for e in events_of(cluster, project, "model.created"))
    assert names == {f"model-{i}": 1 for i in range(6)}


def test_a_run_ended_two_ways_on_both_replicas_at_once_ends_once(cluster: Replicated, project: str) -> None:
    a, b = cluster.urls
    with cluster.client() as client:
        runs = [client.create_run(project)["id"] for _ in range(5)]
    headers = caught_up(cluster)
    for run_id in runs:
        path = f"/projects/{project}/runs/{run_id}/finish"
        answers = asyncio.run(at_once(("POST", a, path, {"status": "finished"}, headers),
                                      ("POST", b, path, {"status": "failed"}, headers)))
        assert sorted(r.status_code for r in answers) == [200, 409], [r.text for r in answers]
    ended = Counter(e["aggregate_id"] for e in events_of(cluster, project, "run.finished"))
    assert ended == dict.fromkeys(runs, 1)


def test_one_idempotency_key_sent_to_both_replicas_appends_one_event(cluster: Replicated, project: str) -> None:
    a, b = cluster.urls
    headers = caught_up(cluster)
    for _ in range(5):
        keyed = {**headers, "Idempotency-Key": uuid.uuid4().hex}
        answers = asyncio.run(at_once(("POST", a, f"/projects/{project}/runs", {}, keyed),
                                      ("POST", b, f"/projects/{project}/runs", {}, keyed)))
        assert [r.status_code for r in answers] == [201, 201], [r.text for r in answers]
        assert answers[0].json()["id"] == answers[1].json()["id"]
    assert len(events_of(cluster, project, "run.created")) == 5


def test_killing_a_replica_loses_no_acknowledged_write_and_requests_keep_succeeding(
        cluster: Replicated, project: str) -> None:
    acknowledged: list[str] = []
    failures: list[BaseException] = []
    lock = threading.Lock()

    def write(count: int) -> None:
        # no SDK retries: every answer here is the gateway's own (its retry on the other replica)
        with cluster.client(retries=0) as client:
            try:
                for _ in range(count):
                    run_id = client.create_run(project)["id"]
                    with lock:
                        acknowledged.append(run_id)
                    assert client.get_run(project, run_id)["id"] == run_id
            except BaseException as err:  # noqa: BLE001 - reported by the test below
                failures.append(err)

    writers = [threading.Thread(target=write, args=(30,)) for _ in range(2)]
    for writer in writers:
        writer.start()
    deadline = time.monotonic() + 60
    while len(acknowledged) < 10 and time.monotonic() < deadline and not failures:
        time.sleep(0.01)
    cluster.plat.kill("registry-b")  # SIGKILL, mid-load
    for writer in writers:
        writer.join(timeout=120)
    assert not failures, failures
    assert len(acknowledged) == 60
    created = Counter(e["aggregate_id"] for e in events_of(cluster, project, "run.created"))
    assert created == dict.fromkeys(acknowledged, 1)  # every acknowledged run exactly once, nothing else
    cluster.start_b()  # back with its own read model and consumer: it catches up from where it was
    resp = loopback.get(f"{cluster.urls[1]}/projects/{project}/runs", timeout=30, params={"page_size": 1000},
                        headers=caught_up(cluster))
    assert resp.status_code == 200, resp.text
    assert {r["id"] for r in resp.json()["runs"]} == set(acknowledged)


def test_both_replicas_read_models_equal_a_rebuild(cluster: Replicated) -> None:
    headers = caught_up(cluster)
    hashes = [loopback.get(f"{url}/admin/content-hash", headers=headers, timeout=30) for url in cluster.urls]
    assert all(r.status_code == 200 for r in hashes), [r.text for r in hashes]
    assert hashes[0].json()["content_hash"] == hashes[1].json()["content_hash"]
    rebuilt = loopback.post(f"{cluster.urls[1]}/admin/rebuild", headers=cluster.plat.service_headers, timeout=120)
    assert rebuilt.status_code == 200, rebuilt.text
    assert rebuilt.json()["content_hash"] == hashes[0].json()["content_hash"]


def test_each_replica_keeps_its_read_model_in_a_folder_of_its_own(cluster: Replicated) -> None:
    data: Path = cluster.plat.data_dir
    assert (data / "registry" / "registry.sqlite3").exists()
    assert (data / "registry" / "replicas" / REPLICA_B / "registry.sqlite3").exists()
