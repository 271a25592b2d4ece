"""``cairn backup``: snapshot Cairn's JetStream streams into a folder, and restore them
(cairn.cluster.backup; docs/deploy.md, "Backups and restore").

They talk to NATS itself, not the gateway: the snapshot API is an admin's, so they connect as
Cairn's NATS ``admin`` user (its credentials file, as ``cairn up`` or ``cairn cluster config``
wrote it). TLS to a cluster: ``CAIRN_NATS_TLS_CA`` names the cluster's CA, as for the services.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from cairn.cli.output import Ctx, emit, pass_ctx

T = TypeVar("T")

nats_url_option = click.option("--nats-url", envvar="CAIRN_NATS_URL", required=True,
                               help="NATS server(s), comma-separated (default $CAIRN_NATS_URL).")
creds_option = click.option(
    "--creds", type=click.Path(path_type=Path, dir_okay=False), envvar="CAIRN_NATS_CREDS", required=True,
    help='The NATS admin user\'s credentials file (mode 0600, {"user": "admin", "password": ...}): '
         "DATA_DIR/secrets/nats/admin.json under cairn up (default $CAIRN_NATS_CREDS).")


def _with_nats(nats_url: str, creds: Path, work: Callable[[Any], Awaitable[T]]) -> T:
    """Connect as ``creds``'s user, run ``work(nc)``, close."""
    from cairn.kernel.eventlog import connect
    from cairn.kernel.natsauth import NatsCredentials

    async def main() -> T:
        nc = await connect(nats_url, name="cairn-backup", timeout=10, credentials=NatsCredentials.read(creds))
        try:
            return await work(nc)
        finally:
            await nc.close()

    return asyncio.run(main())


@click.group()
def backup() -> None:
    """Back up the event log and the other JetStream state, and restore it.

    A backup is a folder: one JetStream snapshot per stream and a manifest.json with each one's
    sequences and SHA-256 digests. It holds the services' keys (bucket cairn-keys): keep it as
    you keep the cluster's secrets.

    Example: cairn backup create --out /backups/2026-12-05 --nats-url nats://127.0.0.1:4222 --creds ~/.cairn/secrets/nats/admin.json
    """


@backup.command()
@click.option("--out", "out", type=click.Path(path_type=Path, file_okay=False), required=True,
              help="A new or empty folder for the backup (made with mode 0700).")
@click.option("--stream", "streams", multiple=True,
              help="Only this stream (repeat); default every stream but the leases and web sessions buckets.")
@click.option("--chunk-size", type=click.IntRange(1024, 16 << 20), default=128 << 10, show_default=True,
              help="Bytes per chunk the server sends (each with a digest in the manifest).")
@nats_url_option
@creds_option
@pass_ctx
def create(ctx: Ctx, out: Path, streams: tuple[str, ...], chunk_size: int, nats_url: str, creds: Path) -> None:
    """Snapshot every Cairn stream into a folder, while the platform keeps running.

    Streams: the event log (CAIRN_EVENTS), metric batches not yet written, job logs, inference
    logs, the cairn-keys bucket, and any other stream on the server; not the cairn-leases and
    cairn-sessions buckets (short-lived, and wrong to bring back). Metric points already written
    (the metrics service's Parquet files) and artifact blobs are files: back those up as files.

    Example: cairn backup create --out /backups/2026-12-05 --creds ~/.cairn/secrets/nats/admin.json
    """
    from cairn.cluster.backup import create_backup

    manifest = _with_nats(nats_url, creds, lambda nc: create_backup(nc, out, list(streams) or None, chunk_size))
    emit(ctx, [{"stream": s["name"], "messages": s["state"].get("messages"), "last_seq": s["state"].get("last_seq"),
                "bytes": s["size"], "file": str(out / s["file"])} for s in manifest["streams"]],
         columns=["stream", "messages", "last_seq", "bytes", "file"])


@backup.command()
@click.argument("src", type=click.Path(path_type=Path, file_okay=False, exists=True))
@click.option("--replace", is_flag=True,
              help="Delete streams of the backup that the server has, and restore them (default: refuse).")
@click.option("--replicas", type=click.IntRange(1, 5),
              help="Replicas of each restored stream (default: as many as when it was backed up).")
@nats_url_option
@creds_option
@pass_ctx
def restore(ctx: Ctx, src: Path, replace: bool, replicas: int | None, nats_url: str, creds: Path) -> None:
    """Restore a backup into a NATS server or cluster, before the services start.

    Every digest is checked first: a corrupted backup restores nothing. A stream the server has
    already is refused unless --replace. Start the services afterwards with empty read-model
    folders: each rebuilds its read model from the restored log.

    Example: cairn backup restore /backups/2026-12-05 --nats-url nats://10.0.0.11:4222 --creds admin.json
    """
    from cairn.cluster.backup import restore_backup

    restored = _with_nats(nats_url, creds, lambda nc: restore_backup(nc, src, replace=replace, replicas=replicas))
    emit(ctx, [{"stream": name, "messages": state.get("messages"), "last_seq": state.get("last_seq")}
               for name, state in restored.items()], columns=["stream", "messages", "last_seq"])


@backup.command()
@click.argument("src", type=click.Path(path_type=Path, file_okay=False, exists=True))
@pass_ctx
def verify(ctx: Ctx, src: Path) -> None:
    """Check a backup's files against its manifest's digests, without a server.

    Example: cairn backup verify /backups/2026-12-05
    """
    from cairn.cluster.backup import verify_backup

    manifest = verify_backup(src)
    emit(ctx, [{"stream": s["name"], "messages": s["state"].get("messages"), "last_seq": s["state"].get("last_seq"),
                "bytes": s["size"]} for s in manifest["streams"]], columns=["stream", "messages", "last_seq", "bytes"])
