"""``cairn events credentials issue|revoke|list``: read-only NATS credentials for other systems
that follow projects' events straight from NATS (docs/cluster.md, "Event subscriptions from other
systems")."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import click

from cairn.cli.output import Ctx, api_errors, emit, pass_ctx
from cairn.protocol import NATS_TLS_CA_ENV

PATH = "/api/v1/events/subscribers"


@click.group()
def credentials() -> None:
    """Read-only NATS credentials per project for other systems (password shown once). Example: cairn events credentials list"""


def creds_file(issued: dict[str, Any], servers: str, tls_ca: str | None) -> dict[str, Any]:
    """What a subscriber needs to connect (docs/cluster.md has the nats-py example that reads it)."""
    return {"user": issued["user"], "password": issued["password"], "servers": servers.split(","),
            "tls_ca": tls_ca, "inbox_prefix": issued["inbox_prefix"], "stream": issued["stream"],
            "projects": issued["projects"], "filters": issued["filters"], "expires_at": issued["expires_at"]}


@credentials.command("issue")
@click.option("--project", "-p", "projects", multiple=True, required=True,
              help="A project whose events it may read (repeat for more; you must be an admin of each).")
@click.option("--name", required=True, help="The subscriber's name; its NATS user is sub-NAME.")
@click.option("--expires-in-days", type=float, help="Default: never (and never after the token you use).")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the credentials file here (mode 0600); else print it once.")
@click.option("--server", "servers", help="NATS URLs the subscriber uses, comma-separated (default: the gateway's).")
@click.option("--tls-ca", type=click.Path(exists=True, dir_okay=False),
              default=lambda: os.environ.get(NATS_TLS_CA_ENV) or None, help="The cluster CA's certificate.")
@pass_ctx
@api_errors
def issue(ctx: Ctx, projects: tuple[str, ...], name: str, expires_in_days: float | None, out: Path | None,
          servers: str | None, tls_ca: str | None) -> None:
    """Issue credentials. Example: cairn events credentials issue -p vision --name warehouse --out wh.json"""
    body: dict[str, Any] = {"name": name, "projects": list(projects)}
    if expires_in_days is not None:
        body["expires_in_days"] = expires_in_days
    issued = ctx.client.request("POST", PATH, json=body)
    text = json.dumps(creds_file(issued, servers or issued["servers"], tls_ca and str(Path(tls_ca).resolve())),
                      indent=2) + "\n"
    if out is None:
        click.echo(text, nl=False)
        return
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)  # never over another file
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    summary = {k: issued[k] for k in ("name", "user", "projects", "expires_at")}
    if ctx.as_json:
        emit(ctx, {**summary, "file": str(out)})
    else:
        click.echo(f"credentials for {issued['user']} ({', '.join(issued['projects'])}) written to {out} (mode 0600); "
                   "the password is not shown again")


@credentials.command("revoke")
@click.argument("name")
@pass_ctx
@api_errors
def revoke(ctx: Ctx, name: str) -> None:
    """Revoke: the servers drop the user and close its connections. Example: cairn events credentials revoke warehouse"""
    emit(ctx, ctx.client.request("DELETE", f"{PATH}/{name}"))


@credentials.command("list")
@pass_ctx
@api_errors
def list_(ctx: Ctx) -> None:
    """Subscribers you may manage (never passwords). Example: cairn events credentials list --json"""
    emit(ctx, ctx.client.request("GET", PATH)["subscribers"],
         columns=["name", "user", "projects", "expires_at", "revoked", "issued_by", "issued_at"])
