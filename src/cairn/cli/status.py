"""``cairn status``: the platform's health, for one machine or a cluster.

One request to the gateway (``GET /api/v1/status/cluster``, site admins): the gateway holds the
NATS connection, the service replicas' URLs and the leases bucket, so the operator needs only a
token, not NATS credentials or a route into the private network (docs/cluster.md). A caller who
is not a site admin gets what the gateway shows every signed-in caller (``/api/v1/status``: the
services' health and lag) in the same shape, without nodes, streams and leaders.
"""

from __future__ import annotations

import sys
from typing import Any

import click

from cairn.cli.output import Ctx, api_errors, emit, pass_ctx
from cairn.sdk.client import ApiError

CLUSTER_STATUS_PATH = "/api/v1/status/cluster"


def replica_rows(report: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per replica of every service (a service of one replica: one row)."""
    return [{"service": name, **{k: v for k, v in replica.items() if k != "pid"}}
            for name, item in report["services"].items() for replica in item.get("replicas") or [item]]


@click.command()
@pass_ctx
@api_errors
def status(ctx: Ctx) -> None:
    """NATS nodes, streams, every service replica's projection lag, and leaders.

    Exits 1 when something is not ready. Example: cairn status --json
    """
    try:
        report = ctx.client.request("GET", CLUSTER_STATUS_PATH)
    except ApiError as err:
        if err.status != 403:
            raise
        report = {"nodes": [], "streams": [], "leaders": [], **ctx.client.status()}
    if ctx.as_json:
        emit(ctx, report)
    else:
        log = report["event_log"]
        click.echo(f"event log: {'connected' if log.get('connected') else 'DOWN'}  "
                   f"last_seq={log.get('last_seq')}  {log.get('error') or ''}".rstrip())
        meta = report.get("meta")  # only with the servers' monitoring endpoints (CAIRN_NATS_MONITOR_URLS)
        if meta:
            click.echo(f"JetStream meta group: cluster={meta.get('cluster')} size={meta.get('size')} "
                       f"leader={meta.get('leader')}")
        for failed in report.get("monitor_errors") or []:
            click.echo(f"NATS monitoring endpoint {failed['url']}: {failed['error']}")
        if report["nodes"]:  # none for a caller who is not a site admin
            nodes = [{**node, "leads": len(node["leads"]), "follows": len(node["follows"])} for node in report["nodes"]]
            emit(ctx, nodes, title="NATS nodes (streams led and followed)",
                 columns=["name", "connected", "leads", "follows", "current", "lag", "offline"])
            emit(ctx, report["streams"], title="streams",
                 columns=["name", "replicas", "leader", "current", "lag", "last_seq", "error"])
        emit(ctx, replica_rows(report), title="services (one line per replica)",
             columns=["service", "url", "ready", "applied_seq", "lag", "written_seq", "parked", "error"])
        if report["leaders"]:
            emit(ctx, report["leaders"], title="leaders",
                 columns=["singleton", "holder", "term", "live", "expires_in_s"])
    if not report["ready"]:
        sys.exit(1)
