"""Two replicas of the metrics service behind one gateway, each writing every point into Parquet
of its own (services/metrics/stream.py).

Why: a metrics replica must neither split the points with another (each read would then depend on
the replica asked) nor miss a batch that the stream deleted once the others wrote it, and a read
right after a write must show it on whichever replica answers. The tests send batches through the
gateway and straight to one replica, read them back from the other, kill the replica that
announces summaries, and start a third replica the stream has nothing left for (refused) and then
from a copy of a stopped replica's folder (caught up). The platform is the harness's (real
nats-server, real service processes); replica ``b`` is one more process with ``CAIRN_REPLICA=b``.
"""

from __future__ import annotations

import json
import shutil
import signal
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import loopback
import pytest

import cairn
from cairn.natsserver import wait_for_tcp
from cairn.protocol import H_CAIRN_METRICS_SEQ, H_CAIRN_MIN_METRICS_SEQ
from cairn.up import SERVICES
from cluster.replica_harness import ReplicaSet, wait_until

from platform_harness import Platform, read_all_events, running

WAIT_S = 1.0  # CAIRN_MIN_SEQ_WAIT_S of the metrics replicas: how long a read waits for its writer


@pytest.fixture(scope="module")
def metrics_pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ReplicaSet]:
    plat = Platform(tmp_path_factory.mktemp("replicas-metrics"))
    plat.service_env["metrics"] = {"CAIRN_WRITER_REPLICAS": "main,b", "CAIRN_MIN_SEQ_WAIT_S": str(WAIT_S),
                                   "CAIRN_LEADER_LEASE_S": "2", "CAIRN_LEADER_RENEW_S": "0.5"}
    with running(plat):
        pair = ReplicaSet(plat, ("metrics",))
        pair.start_replica("metrics")
        services: dict[str, Any] = {name: plat.service_url(name) for name in SERVICES}
        services["metrics"] = pair.urls_of("metrics")
        plat.service_env["gateway"] = {"CAIRN_SERVICES": json.dumps(services)}
        plat.restart("gateway")
        plat.wait_healthy()
        yield pair


def admin(plat: Platform) -> httpx.Client:
    return httpx.Client(base_url=f"{plat.gateway}/api/v1/registry", headers=plat.headers, timeout=30)


def new_run(plat: Platform) -> tuple[str, str]:
    project = f"mx-{uuid.uuid4().hex[:10]}"
    with admin(plat) as api:
        assert api.post("/projects", json={"name": project}).status_code == 201
        run = api.post(f"/projects/{project}/runs", json={"experiment": "default"}).json()["id"]
    return project, run


def points(start: int, count: int) -> dict[str, Any]:
    return {"batch_id": uuid.uuid4().hex,
            "points": [{"key": "loss", "value": float(s), "step": s} for s in range(start, start + count)]}


def history(url: str, plat: Platform, project: str, run: str, headers: dict[str, str] | None = None) -> httpx.Response:
    return loopback.get(f"{url}/projects/{project}/runs/{run}/metrics", params={"key": "loss"},
                        headers={**plat.service_headers, **(headers or {})}, timeout=30)


def test_a_batch_written_on_one_replica_is_read_on_the_other(metrics_pair: ReplicaSet) -> None:
    plat = metrics_pair.plat
    a, b = metrics_pair.urls_of("metrics")
    project, run = new_run(plat)
    for round_ in range(10):  # each read at once on the replica that did not take the batch
        writer, reader = (a, b) if round_ % 2 else (b, a)
        resp = loopback.post(f"{writer}/projects/{project}/runs/{run}/metrics", json=points(round_ * 10, 10),
                             headers=plat.service_headers, timeout=30)
        assert resp.status_code == 202, resp.text
        written = resp.headers[H_CAIRN_METRICS_SEQ]
        assert written == str(resp.json()["sequence"])
        body = history(reader, plat, project, run, {H_CAIRN_MIN_METRICS_SEQ: written}).json()
        assert body["steps"] == list(range(round_ * 10 + 10))
    # a sequence no batch has reached: a 503 that says why, after the bounded wait
    resp = history(a, plat, project, run, {H_CAIRN_MIN_METRICS_SEQ: str(10**9)})
    assert resp.status_code == 503 and H_CAIRN_MIN_METRICS_SEQ in resp.json()["error"]["message"]
    bad = history(a, plat, project, run, {H_CAIRN_MIN_METRICS_SEQ: "soon"})
    assert bad.status_code == 422 and H_CAIRN_MIN_METRICS_SEQ in bad.json()["error"]["message"]


def test_the_sdk_reads_its_own_points_through_the_gateway(metrics_pair: ReplicaSet) -> None:
    plat = metrics_pair.plat
    project, _ = new_run(plat)
    with metrics_pair.client() as client, cairn.start_run(project=project, client=client) as run:
        for round_ in range(8):  # the gateway alternates the replicas
            for step in range(round_ * 25, round_ * 25 + 25):
                run.log_metric("loss", float(step), step=step)
            run.metrics.flush()
            assert client.last_metrics_seq > 0
            got = client.metric_history(project, run.id, "loss")
            assert list(got["steps"]) == list(range(round_ * 25 + 25))
    # both replicas hold every point, each in its own folder
    for url in metrics_pair.urls_of("metrics"):
        body = history(url, plat, project, run.id, {H_CAIRN_MIN_METRICS_SEQ: str(client.last_metrics_seq)}).json()
        assert body["steps"] == list(range(200))
    # the gateway's status shows how far each metrics replica wrote the metrics stream
    def written() -> list[int]:
        status = loopback.get(f"{plat.gateway}/api/v1/status", headers=plat.headers, timeout=10).json()
        return [r["written_seq"] for r in status["services"]["metrics"]["replicas"]]

    wait_until(lambda: all(w >= client.last_metrics_seq for w in written()), "a replica's written_seq stayed behind")
    assert len(written()) == 2
    own = plat.data_dir / "metrics" / project / run.id
    theirs = plat.data_dir / "metrics" / "replicas" / "b" / project / run.id
    assert list(own.glob("part-*.parquet")) and list(theirs.glob("part-*.parquet"))


def announced_counts(plat: Platform, project: str, run: str) -> list[int]:
    return [s["count"] for e in read_all_events(plat.nats_url) if e["project"] == project
            and e["type"] == "metric.summarized" for s in e["data"]["summaries"] if s["run_id"] == run]


def health(url: str) -> dict[str, Any]:
    return loopback.get(f"{url}/healthz", timeout=10).json()


def test_one_replica_announces_summaries_and_the_other_takes_over(metrics_pair: ReplicaSet) -> None:
    plat = metrics_pair.plat
    urls = dict(zip(("metrics", "metrics-b"), metrics_pair.urls_of("metrics"), strict=True))
    project, run = new_run(plat)
    resp = loopback.post(f"{urls['metrics']}/projects/{project}/runs/{run}/metrics", json=points(0, 40),
                         headers=plat.service_headers, timeout=30)
    assert resp.status_code == 202
    wait_until(lambda: 40 in announced_counts(plat, project, run), "the 40 points were never announced")
    holders = wait_until(lambda: [n for n, u in urls.items() if health(u).get("announcer")] or None,
                         "no replica holds the announcing lease")
    assert len(holders) == 1
    # the other replica settles its flags against the log: nothing left for it to announce
    (other,) = [n for n in urls if n != holders[0]]
    wait_until(lambda: health(urls[other])["announcing"] is False, f"{other} kept summaries flagged")
    plat.procs[holders[0]].send_signal(signal.SIGKILL)
    plat.procs[holders[0]].wait()
    try:
        resp = loopback.post(f"{urls[other]}/projects/{project}/runs/{run}/metrics", json=points(40, 20),
                             headers=plat.service_headers, timeout=30)
        assert resp.status_code == 202
        wait_until(lambda: 60 in announced_counts(plat, project, run), "the survivor never announced")
        assert health(urls[other])["announcer"] is True
    finally:  # back for the next test: the killed replica catches up from its durable
        if holders[0] == "metrics":
            plat.start_service("metrics")
        else:
            metrics_pair.start_replica("metrics")
    body = history(urls[holders[0]], plat, project, run, {H_CAIRN_MIN_METRICS_SEQ: resp.headers[H_CAIRN_METRICS_SEQ]})
    assert body.json()["steps"] == list(range(60))


def test_a_late_replica_is_refused_then_starts_from_a_copy(metrics_pair: ReplicaSet) -> None:
    plat = metrics_pair.plat
    a, b = metrics_pair.urls_of("metrics")
    project, run = new_run(plat)
    resp = loopback.post(f"{a}/projects/{project}/runs/{run}/metrics", json=points(0, 30),
                         headers=plat.service_headers, timeout=30)
    seq = resp.headers[H_CAIRN_METRICS_SEQ]
    for url in (a, b):  # both wrote it: the stream deletes the batch
        assert history(url, plat, project, run, {H_CAIRN_MIN_METRICS_SEQ: seq}).json()["total"] == 30
    late = ReplicaSet(plat, ("metrics",))
    env_c = {**plat._env("metrics"), "CAIRN_PORT": str(late.ports_b["metrics"]), "CAIRN_REPLICA": "c"}
    proc = ServiceLauncher(plat, env_c, "metrics-c")
    assert proc.wait_exit(60) != 0
    assert "CAIRN_WRITER_REPLICAS" in proc.log() and "copy" in proc.log()
    # the documented way in: stop b, copy its folder (not its read model), start c, then b again
    plat.procs["metrics-b"].send_signal(signal.SIGTERM)
    plat.procs["metrics-b"].wait()
    folder_b = plat.data_dir / "metrics" / "replicas" / "b"
    folder_c = plat.data_dir / "metrics" / "replicas" / "c"
    shutil.rmtree(folder_c, ignore_errors=True)
    shutil.copytree(folder_b, folder_c, ignore=shutil.ignore_patterns("runs.sqlite3*"))
    more = loopback.post(f"{a}/projects/{project}/runs/{run}/metrics", json=points(30, 10),
                         headers=plat.service_headers, timeout=30)  # while b is away: kept for b
    proc = ServiceLauncher(plat, env_c, "metrics-c")
    try:
        wait_for_tcp("127.0.0.1", late.ports_b["metrics"], timeout=60)  # its durable made: b may go on
        metrics_pair.start_replica("metrics")
        url_c = f"http://127.0.0.1:{late.ports_b['metrics']}"
        for url in (b, url_c):
            got = history(url, plat, project, run, {H_CAIRN_MIN_METRICS_SEQ: more.headers[H_CAIRN_METRICS_SEQ]})
            assert got.json()["steps"] == list(range(40))
    finally:
        proc.stop()


class ServiceLauncher:
    """One more metrics process with its own environment (not one of the platform's)."""

    def __init__(self, plat: Platform, env: dict[str, str], name: str) -> None:
        import subprocess
        import sys

        self.path = plat.root / f"{name}.log"
        with open(self.path, "ab") as out:
            self.proc = subprocess.Popen([sys.executable, "-m", "cairn.services.metrics"], env=env,
                                         stdout=out, stderr=out)

    def wait_exit(self, timeout: float) -> int:
        return self.proc.wait(timeout)

    def log(self) -> str:
        return self.path.read_text(errors="replace")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except Exception:  # noqa: BLE001 - a stuck stop is killed
            self.proc.kill()
            self.proc.wait()
