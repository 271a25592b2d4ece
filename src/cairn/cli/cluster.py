"""``cairn cluster``: make the certificates and the configs of a NATS cluster that runs Cairn
(docs/cluster.md, "NATS cluster and security on the wire")."""

from __future__ import annotations

from pathlib import Path

import click

from cairn.cli.output import Ctx, emit, pass_ctx


@click.group()
def cluster() -> None:
    """Cluster mode: certificates and NATS configs for a cluster of machines.

    Example: cairn cluster certs --out tls --name prod --host nats1=10.0.0.11 --host nats2=10.0.0.12 --host nats3=10.0.0.13
    """


@cluster.command()
@click.option("--out", "out", type=click.Path(path_type=Path, file_okay=False), required=True,
              help="Folder for the CA and the host certificates (made with mode 0700).")
@click.option("--name", "name", required=True, help="The cluster's name (in the CA's subject).")
@click.option("--host", "hosts", multiple=True, required=True, metavar="NAME=ADDR",
              help="A host that runs a nats-server: its DNS name and IP address (repeat per host).")
@click.option("--force", is_flag=True, help="Make a new CA and new host certificates even where some exist.")
@pass_ctx
def certs(ctx: Ctx, out: Path, name: str, hosts: tuple[str, ...], force: bool) -> None:
    """Make the cluster's CA and a TLS certificate per host (ECDSA P-256).

    The CA (ca.pem, ca-key.pem: keep the key off the servers) is valid 10 years, host certificates
    (NAME.pem, NAME-key.pem) 2 years, for the host's name and address, on client, route and leaf
    listeners. Re-running keeps the CA and every certificate that still names its host (a new or moved
    host gets one from the same CA); --force makes them all again.

    Example: cairn cluster certs --out tls --name prod --host nats1=10.0.0.11 --host nats2=10.0.0.12
    """
    from cairn.cluster.certs import Host, make_certs

    done = make_certs(out, name, [Host.parse(text) for text in hosts], force=force)
    emit(ctx, {key: [str(path) for path in paths] for key, paths in done.items()})


@cluster.command()
@click.option("--out", "out", type=click.Path(path_type=Path, file_okay=False), required=True,
              help="Folder for the node configs, credentials and env files.")
@click.option("--name", "name", default="cairn", show_default=True, help="The NATS cluster's name.")
@click.option("--node", "nodes", multiple=True, required=True, metavar="NAME=HOST:CLIENT:CLUSTER[:LEAF]",
              help="A nats-server: its name (as given to cluster certs), address, client and route ports, "
                   "and optionally its leaf port (repeat per node).")
@click.option("--leaf-port", type=click.IntRange(1, 65535), default=7422, show_default=True,
              help="The leaf node port of nodes that name none.")
@click.option("--tls-dir", type=click.Path(path_type=Path, file_okay=False, exists=True),
              help="Where cairn cluster certs wrote the certificates; without it, no TLS (a trusted network only).")
@click.option("--replicas", type=click.IntRange(1, 5), default=3, show_default=True,
              help="Replicas of every stream and key bucket (CAIRN_REPLICAS in the env files).")
@click.option("--site", "sites", multiple=True, metavar="NAME=HOST:PORT",
              help="A remote site's leaf nats-server and where its agents reach it (repeat per site).")
@click.option("--store-dir", type=click.Path(path_type=Path, file_okay=False),
              help="Where each node keeps its JetStream files, as STORE_DIR/NODE (default OUT/store).")
@pass_ctx
def config(ctx: Ctx, out: Path, name: str, nodes: tuple[str, ...], leaf_port: int, tls_dir: Path | None,
           replicas: int, sites: tuple[str, ...], store_dir: Path | None) -> None:
    """Write a nats-server config per node, the per-role credentials and env files, and leaf configs.

    Each node gets JetStream with sync_interval: always, routes to the other nodes, a leaf node
    listener, TLS on every listener (with --tls-dir) and Cairn's per-role users. Re-running keeps
    the credentials. Start a node with: nats-server -c OUT/nodes/NAME.conf

    Example: cairn cluster config --out nats --tls-dir tls --node nats1=10.0.0.11:4222:6222 --node nats2=10.0.0.12:4222:6222 --node nats3=10.0.0.13:4222:6222 --site lab=127.0.0.1:4222
    """
    from cairn.cluster.config import Node, Site, write_cluster
    from cairn.up import NATS_USERS, PROCESSES

    written = write_cluster(out, name, [Node.parse(text, leaf_port) for text in nodes], users=NATS_USERS,
                            services=PROCESSES, tls_dir=tls_dir, replicas=replicas,
                            sites=[Site.parse(text) for text in sites], store_root=store_dir)
    emit(ctx, {"nodes": {k: str(v) for k, v in written.nodes.items()},
               "env": {k: str(v) for k, v in written.env.items()},
               "credentials": {k: str(v) for k, v in written.credentials.items()},
               "leaves": {k: str(v) for k, v in written.leaves.items()},
               "users": {k: str(v) for k, v in written.users.items()}})
