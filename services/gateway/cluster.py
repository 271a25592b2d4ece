"""The cluster as the gateway sees it (``GET /api/v1/status/cluster``, what ``cairn status`` shows).

Why the gateway answers it: the gateway is the one public port, and it already holds what the
report needs: a NATS connection (JetStream's API: the account, every stream's info with its RAFT
group: leader, replicas, current, lag, last heard), the URLs of every service replica
(CAIRN_SERVICES: a URL or a list of URLs per service) and the leases bucket. An operator needs only
a site admin's token, not NATS credentials or a route to the private network.

With one machine the report has the same shape: one node (the server, leading every stream), one
replica per service, and no leaders unless a singleton took a lease.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import httpx
from fastapi import APIRouter, Request
from nats.js.errors import BucketNotFoundError, NoKeysError

from cairn.kernel.identity import SITE_ADMIN, requires
from cairn.protocol import LEASE_BUCKET

router = APIRouter(prefix="/api/v1/status", tags=["ops"])
PROBE_TIMEOUT_S = 2.0  # per service replica's /healthz and per JetStream API request
NS = 1e9


def service_urls(value: Any) -> list[str]:
    """A service's replicas from CAIRN_SERVICES: one URL, or a list of them (issue 26)."""
    if isinstance(value, str):
        return [value]
    return [str(url) for url in value or []]


async def _js_api(nc: Any, subject: str) -> dict[str, Any]:
    reply = await nc.request(subject, b"", timeout=PROBE_TIMEOUT_S)
    body: dict[str, Any] = json.loads(reply.data)
    return body


async def streams_report(nc: Any) -> list[dict[str, Any]]:
    """Every stream (key-value buckets are streams ``KV_<bucket>``): replicas wanted, messages,
    last sequence, and its RAFT group: leader and each replica's current/lag/active."""
    names: list[str] = []
    offset = 0
    while True:
        page = await nc.request("$JS.API.STREAM.NAMES", json.dumps({"offset": offset}).encode(), timeout=PROBE_TIMEOUT_S)
        body = json.loads(page.data)
        names += body.get("streams") or []
        offset = len(names)
        if not body.get("streams") or offset >= body.get("total", 0):
            break

    async def one(name: str) -> dict[str, Any]:
        try:
            info = await _js_api(nc, f"$JS.API.STREAM.INFO.{name}")
        except Exception as err:  # noqa: BLE001 - a status report shows every failure
            return {"name": name, "error": f"{type(err).__name__}: {err}"}
        if "error" in info:
            return {"name": name, "error": info["error"].get("description")}
        cluster = info.get("cluster") or {}
        replicas = [{"name": r.get("name"), "current": bool(r.get("current")), "lag": r.get("lag", 0),
                     "active_s": round(r.get("active", 0) / NS, 3), "offline": bool(r.get("offline"))}
                    for r in cluster.get("replicas") or []]
        state = info.get("state") or {}
        return {"name": name, "replicas": info.get("config", {}).get("num_replicas", 1),
                "cluster": cluster.get("name"), "leader": cluster.get("leader"), "followers": replicas,
                "messages": state.get("messages", 0), "last_seq": state.get("last_seq", 0),
                "lag": max((r["lag"] for r in replicas), default=0),
                "current": all(r["current"] for r in replicas)}

    return list(await asyncio.gather(*(one(name) for name in sorted(names))))


async def monitoring_report(http: httpx.AsyncClient, urls: list[str]) -> dict[str, Any]:
    """What the servers' monitoring endpoints (CAIRN_NATS_MONITOR_URLS, e.g. ``http://nats1:8222``)
    add: each server's ``/varz`` (name, version, connections, memory) and ``/jsz`` (the JetStream
    meta group: its leader and each member's current/lag/active, servers holding no stream too)."""
    async def one(url: str) -> dict[str, Any]:
        try:
            varz, jsz = await asyncio.gather(http.get(f"{url}/varz", timeout=PROBE_TIMEOUT_S),
                                             http.get(f"{url}/jsz", timeout=PROBE_TIMEOUT_S))
            server, js = varz.json(), jsz.json()
        except (httpx.HTTPError, ValueError) as err:
            return {"url": url, "error": f"{type(err).__name__}: {err}"}
        return {"url": url, "name": server.get("server_name"), "version": server.get("version"),
                "connections": server.get("connections"), "mem_bytes": server.get("mem"),
                "jetstream_bytes": js.get("storage"), "meta": js.get("meta_cluster") or {}}

    servers = list(await asyncio.gather(*(one(url) for url in urls)))
    # the meta leader's own view first (a follower's may be stale), else any server's
    views = sorted((s for s in servers if s.get("meta")), key=lambda s: s["meta"].get("leader") != s["name"])
    meta: dict[str, Any] = views[0]["meta"] if views else {}
    return {"servers": servers, "meta": {"cluster": meta.get("name"), "leader": meta.get("leader"),
                                         "size": meta.get("cluster_size"),
                                         "members": [{"name": r.get("name"), "current": bool(r.get("current")),
                                                      "lag": r.get("lag", 0), "offline": bool(r.get("offline")),
                                                      "active_s": round(r.get("active", 0) / NS, 3)}
                                                     for r in meta.get("replicas") or []]}}


def nodes_report(server_info: dict[str, Any], streams: list[dict[str, Any]],
                 monitoring: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """The NATS servers that hold streams (from their RAFT groups) and the one the gateway is
    connected to: which streams each leads and follows, whether it is current, its largest lag.
    With ``monitoring`` (:func:`monitoring_report`), also every member of the JetStream meta
    group, which is the meta leader, and what each monitored server says of itself."""
    nodes: dict[str, dict[str, Any]] = {}

    def node(name: str) -> dict[str, Any]:
        return nodes.setdefault(name, {"name": name, "connected": False, "leads": [], "follows": [],
                                       "current": True, "offline": False, "lag": 0})

    here = server_info.get("server_name") or server_info.get("server_id") or "?"
    node(here).update(connected=True, version=server_info.get("version"), cluster=server_info.get("cluster"),
                      jetstream=bool(server_info.get("jetstream")))
    for stream in streams:
        if stream.get("leader"):
            node(stream["leader"])["leads"].append(stream["name"])
        for replica in stream.get("followers", []):
            item = node(replica["name"])
            item["follows"].append(stream["name"])
            item["current"] = item["current"] and replica["current"]
            item["offline"] = item["offline"] or replica["offline"]
            item["lag"] = max(item["lag"], replica["lag"])
    if monitoring:
        meta = monitoring["meta"]
        if meta.get("leader"):
            node(meta["leader"])["meta_leader"] = True
        for member in meta["members"]:
            item = node(member["name"])
            item["meta_leader"] = item.get("meta_leader", False)
            item["current"] = item["current"] and member["current"]
            item["offline"] = item["offline"] or member["offline"]
        for server in monitoring["servers"]:
            if server.get("name"):
                node(server["name"])["monitor"] = {k: v for k, v in server.items() if k not in ("name", "meta")}
    return sorted(nodes.values(), key=lambda n: n["name"])


async def leaders_report(js: Any, now: float) -> list[dict[str, Any]]:
    """Each singleton's lease in ``cairn-leases``; none when the bucket does not exist."""
    try:
        kv = await js.key_value(LEASE_BUCKET)
        keys = await kv.keys()
    except (BucketNotFoundError, NoKeysError):
        return []
    leaders = []
    for key in sorted(keys):
        try:
            lease = json.loads((await kv.get(key)).value or b"{}")
        except Exception as err:  # noqa: BLE001 - one bad value must not hide the others
            leaders.append({"singleton": key, "error": f"{type(err).__name__}: {err}"})
            continue
        expires_at = float(lease.get("expires_at") or 0)
        leaders.append({"singleton": key, "holder": lease.get("holder"), "term": lease.get("term"),
                        "expires_at": expires_at, "expires_in_s": round(expires_at - now, 3),
                        "live": expires_at > now})
    return leaders


async def services_report(http: httpx.AsyncClient, services: dict[str, Any], last: int | None) -> dict[str, Any]:
    """Every replica of every service: its /healthz (ready, applied sequence, parked) and its
    projection's lag behind the event log; a service's own line sums its replicas up (ready when
    all are, the largest lag), so a report of one replica each reads as before."""
    async def probe(url: str) -> dict[str, Any]:
        try:
            resp = await http.get(f"{url}/healthz", timeout=PROBE_TIMEOUT_S)
            body = resp.json()
        except (httpx.HTTPError, ValueError) as err:
            return {"url": url, "ready": False, "error": f"{type(err).__name__}: {err}"}
        applied = body.get("applied_seq")
        return {"url": url, "ready": resp.status_code == 200 and bool(body.get("ready")), "applied_seq": applied,
                "lag": (last - applied) if (last is not None and applied is not None) else None,
                "parked": body.get("parked"), "error": body.get("error"), "pid": body.get("pid")}

    pairs = [(name, url) for name, value in services.items() for url in service_urls(value)]
    probes = await asyncio.gather(*(probe(url) for _, url in pairs))
    report: dict[str, Any] = {}
    for (name, _), item in zip(pairs, probes, strict=True):
        report.setdefault(name, []).append(item)
    return {name: summary(replicas) for name, replicas in report.items()}


def summary(replicas: list[dict[str, Any]]) -> dict[str, Any]:
    """A service's line: ready when every replica is, the smallest applied sequence, the largest lag."""
    lags = [r["lag"] for r in replicas if r.get("lag") is not None]
    applied = [r["applied_seq"] for r in replicas if r.get("applied_seq") is not None]
    return {"ready": all(r["ready"] for r in replicas), "applied_seq": min(applied, default=None),
            "lag": max(lags, default=None), "parked": sum(r.get("parked") or 0 for r in replicas),
            "url": replicas[0]["url"], "error": next((r["error"] for r in replicas if r.get("error")), None),
            "replicas": replicas}


async def cluster_report(app: Any) -> dict[str, Any]:
    """The whole report: ready, event log, services (with their replicas), nodes, streams, leaders."""
    runtime = app.state.runtime
    settings = app.state.settings
    nc = runtime.log.nc
    report: dict[str, Any] = {"ready": True, "event_log": {}, "services": {}, "nodes": [], "streams": [],
                              "leaders": []}
    last: int | None = None
    try:
        last = await runtime.log.last_sequence()
        report["event_log"] = {"connected": True, "stream": runtime.log.stream, "last_seq": last}
        report["streams"] = await streams_report(nc)
        report["leaders"] = await leaders_report(runtime.log.js, time.time())
    except Exception as err:  # noqa: BLE001 - the report shows the failure instead of failing
        report["ready"] = False
        report["event_log"] = {"connected": nc.is_connected, "error": f"{type(err).__name__}: {err}"}
    monitoring = None
    if settings.nats_monitor_urls:
        monitoring = await monitoring_report(app.state.http, settings.nats_monitor_urls)
        report["meta"] = monitoring["meta"]
        report["monitor_errors"] = [s for s in monitoring["servers"] if s.get("error")]
    # nats-py keeps the INFO of the server it is connected to only here
    report["nodes"] = nodes_report(getattr(nc, "_server_info", {}) or {}, report["streams"], monitoring)
    runner = runtime.runner
    here = {"url": None, "replica": settings.replica or "main", "ready": runner.last_error is None,
            "applied_seq": runner.applied, "lag": (last - runner.applied) if last is not None else None,
            "parked": runner.parked_count(), "error": runner.last_error}
    report["services"] = {"gateway": summary([here]),
                          **await services_report(app.state.http, settings.services, last)}
    report["ready"] = report["ready"] and all(s["ready"] for s in report["services"].values())
    return report


@router.get("/cluster", **requires(SITE_ADMIN))
async def cluster_status(request: Request) -> dict[str, Any]:
    """NATS nodes and their streams' RAFT state, every stream's replicas and lag, every replica of
    every service with its projection lag, and the singletons' leaders (site admins only)."""
    return await cluster_report(request.app)
