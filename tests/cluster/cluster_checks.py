"""The checks after every failure scenario: nothing acknowledged lost or doubled, every read model
equal to a rebuild, no job run twice at one attempt.

The event log is read from the cluster as an admin (every event of record, by stream sequence);
read models through each replica's admin routes, at the log's last sequence (``Cairn-Min-Seq``), so
two replicas are compared at the same point. Something may still append while a check runs (the
metrics service announces summaries a moment after a batch, agents heartbeat): a comparison that
saw the log move under it is taken again, within a deadline."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from typing import Any

import httpx
import loopback
from blake3 import blake3

from cairn.protocol import EVENTS_STREAM, H_CAIRN_MIN_METRICS_SEQ, H_CAIRN_MIN_SEQ
from cairn.up import SERVICES
from cluster.cluster_harness import CORE, DEADLINE_S, REPLICATED, SINGLETON_HOST, Cluster
from cluster.cluster_load import Load

FINAL_JOB_STATES = ("succeeded", "failed", "cancelled")


async def _read_events(cluster: Cluster) -> list[dict[str, Any]]:
    nc = await cluster.admin()
    try:
        js = nc.jetstream(timeout=10)
        last = (await js.stream_info(EVENTS_STREAM)).state.last_seq
        events: list[dict[str, Any]] = []
        if not last:
            return events
        sub = await js.subscribe("cairn.evt.>", ordered_consumer=True, stream=EVENTS_STREAM)
        try:
            while True:
                msg = await sub.next_msg(timeout=10)
                envelope = json.loads(msg.data)
                envelope["sequence"] = msg.metadata.sequence.stream
                events.append(envelope)
                if msg.metadata.sequence.stream >= last:
                    return events
        finally:
            await sub.unsubscribe()
    finally:
        await nc.close()


def read_events(cluster: Cluster) -> list[dict[str, Any]]:
    """Every event of record in the cluster's log, in order, each with its ``sequence``."""
    return asyncio.run(_read_events(cluster))


def last_seq(cluster: Cluster) -> int:
    async def ask() -> int:
        nc = await cluster.admin()
        try:
            return int((await nc.jetstream(timeout=10).stream_info(EVENTS_STREAM)).state.last_seq)
        finally:
            await nc.close()

    return asyncio.run(ask())


def check_log(cluster: Cluster, load: Load) -> list[dict[str, Any]]:
    """Every acknowledged write's event exactly once; no job started twice at one attempt."""
    events = [e for e in read_events(cluster) if e["project"] == load.project]
    counts = Counter((e["type"], e["aggregate_id"]) for e in events)
    acked = load.acked
    assert len(acked.runs) == len(set(acked.runs))
    assert [r for r in acked.runs if counts[("run.created", r)] != 1] == [], "runs not created exactly once"
    assert [r for r in acked.params if counts[("run.params_logged", r)] != 1] == [], "params not logged once"
    assert [d for d in acked.blobs if counts[("blob.possessed", d)] != 1] == [], "blobs not recorded once"
    assert [j for j in acked.jobs if counts[("job.submitted", j)] != 1] == [], "jobs not submitted once"
    started = Counter((e["aggregate_id"], e["data"]["attempt"], e["data"].get("rank", 0))
                      for e in events if e["type"] == "job.started")
    assert [key for key, n in started.items() if n > 1] == [], "a job started twice at one attempt"
    ended = Counter(e["aggregate_id"] for e in events if e["type"] == "job.succeeded")
    assert [j for j, n in ended.items() if n > 1] == [], "a job succeeded twice"
    return events


def check_read_models(cluster: Cluster, load: Load) -> None:
    """Each acknowledged run with its params on every registry replica; each acknowledged blob
    from every artifacts replica; each acknowledged metrics batch's points once; each acknowledged
    job finished."""
    seq = last_seq(cluster)
    headers = {**cluster.service_headers, H_CAIRN_MIN_SEQ: str(seq)}
    for host in CORE:
        url = f"{cluster.url(host, 'registry')}/projects/{load.project}/runs"
        # a replica that was cut off may still be catching up: its 503 says so, and to retry
        answer = cluster.wait(lambda u=url: _shown(u, headers, {"page_size": 1000}), f"registry on {host} catches up")
        assert answer.status_code == 200, answer.text
        runs = {r["id"]: r for r in answer.json()["runs"]}
        missing = [r for r in load.acked.runs if r not in runs]
        assert not missing, f"registry on {host} lacks acknowledged runs {missing}"
        for run_id, params in load.acked.params.items():
            got = {k: str(v) for k, v in (runs[run_id].get("params") or {}).items()}
            assert got == params, f"registry on {host}: run {run_id} params {got} != {params}"
    for host in CORE:  # the artifacts replicas share one S3 bucket: each serves every blob, verified
        url = cluster.url(host, "artifacts")
        for digest in load.acked.blobs:  # a replica still catching up answers 503 (retry), as above
            answer = cluster.wait(lambda u=f"{url}/blobs/{digest}": _shown(u, headers, {}),
                                  f"artifacts on {host} shows blob {digest}")
            assert blake3(answer.content).hexdigest() == digest, f"artifacts on {host}: blob {digest} differs"
    for host in CORE:  # each metrics replica writes every point into a folder of its own
        url = cluster.url(host, "metrics")
        shown = {**cluster.service_headers, H_CAIRN_MIN_METRICS_SEQ: str(load.acked.metrics_seq)}
        for run_id, points in load.acked.points.items():
            path = f"{url}/projects/{load.project}/runs/{run_id}/metrics"
            answer = cluster.wait(lambda p=path, h=shown: _shown(p, h, {"key": "loss"}),
                                  f"metrics on {host} shows run {run_id}")
            total = answer.json()["total"]
            assert total == points, f"metrics on {host}: run {run_id}: {total} points of loss, {points} acknowledged"
    for job_id in load.acked.jobs:
        cluster.wait(lambda j=job_id: load.call("GET", f"/scheduler/projects/{load.project}/jobs/{j}")["status"]
                     in FINAL_JOB_STATES, f"job {job_id} finishes")
        assert load.call("GET", f"/scheduler/projects/{load.project}/jobs/{job_id}")["status"] == "succeeded"


def _shown(url: str, headers: dict[str, str], params: dict[str, Any]) -> httpx.Response | None:
    """A replica's answer, or None while it has not yet applied (or written) up to the sequence the
    headers name (503)."""
    try:
        answer = loopback.get(url, params=params, headers=headers, timeout=30)
    except httpx.HTTPError:
        return None
    if answer.status_code == 503:
        return None
    assert answer.status_code == 200, f"{url}: {answer.status_code} {answer.text}"
    return answer


def _hash(cluster: Cluster, url: str, seq: int) -> str | None:
    """A replica's content hash; None while it is still catching up to ``seq`` (the caller's loop
    asks again)."""
    headers = {**cluster.service_headers, H_CAIRN_MIN_SEQ: str(seq)}
    answer = _shown(f"{url}/admin/content-hash", headers, {})
    return None if answer is None else str(answer.json()["content_hash"])


def _rebuild(cluster: Cluster, url: str) -> str:
    answer = loopback.post(f"{url}/admin/rebuild", headers=cluster.service_headers, timeout=120)
    assert answer.status_code == 200, f"{url}: {answer.status_code} {answer.text}"
    return str(answer.json()["content_hash"])


def check_projections(cluster: Cluster, rebuild_on: str) -> None:
    """Replicas of a replicated service hash equal, and equal to a rebuild (on ``rebuild_on``);
    each singleton service hashes equal to its own rebuild. Taken again when the log moved."""
    targets = {s: cluster.replica_urls(s) for s in (*REPLICATED, "scheduler")}
    targets.update({s: [cluster.url(SINGLETON_HOST, s)] for s in SERVICES if s not in REPLICATED})
    for service, urls in targets.items():
        rebuilt_url = next((url for url in urls if url.startswith(f"http://{cluster.ip(rebuild_on)}:")), urls[0])
        deadline = time.monotonic() + DEADLINE_S
        while True:
            before = last_seq(cluster)
            try:
                hashes = {url: _hash(cluster, url, before) for url in urls}
                rebuilt = _rebuild(cluster, rebuilt_url)
            except httpx.HTTPError as err:
                hashes, rebuilt = {"error": repr(err)}, ""
            if last_seq(cluster) == before and set(hashes.values()) == {rebuilt}:
                break
            if time.monotonic() > deadline:
                raise AssertionError(f"{service}: replicas {hashes} and the rebuild on {rebuilt_url} {rebuilt} differ "
                                     f"(log at {before}, then {last_seq(cluster)})")
            time.sleep(0.2)


def check_everything(cluster: Cluster, load: Load, rebuild_on: str) -> None:
    started = time.monotonic()
    assert not load.errors, load.errors
    check_read_models(cluster, load)
    check_log(cluster, load)
    check_projections(cluster, rebuild_on)
    print(f"checks took {time.monotonic() - started:.1f}s")  # where the module's time goes (-s shows it)
