"""Configuration files for a NATS cluster that runs Cairn, and for the sites that join it as leaves.

``cairn cluster config`` writes, under one directory:

- ``nodes/<node>.conf``: one nats-server config per node: its ``server_name``, JetStream on disk
  with ``sync_interval: always`` (acknowledged means on disk on a majority of the replicas), the
  ``cluster`` block with routes to every other node, a ``leafnodes`` listener for remote sites, TLS
  on client, route and leaf listeners (with ``--tls-dir``; routes verify each other's certificate,
  so only a holder of a certificate from the cluster's CA may join), and ``include
  "<node>.users.conf"``.
- ``nodes/<node>.users.conf``: the ``authorization`` block with Cairn's per-role users and
  permissions (cairn.kernel.natsauth, the same table that ``cairn up`` uses). Mode 0600: it holds
  the passwords. A file of its own so that the node's subscriber sync
  (cairn.kernel.subscriber_sync) can rewrite it with the outside event subscribers and reload the
  node, with no edit of the node's config.
- ``creds/<role>.json``: each role's NATS user and password (made once, kept on every re-run, so
  re-writing the configs never locks out a running service).
- ``env/<role>.env``: what a process of that role needs (``CAIRN_NATS_URL`` naming every node,
  ``CAIRN_REPLICAS``, ``CAIRN_NATS_CREDS``, ``CAIRN_NATS_TLS_CA``), for ``source`` or systemd's
  ``EnvironmentFile=``.
- ``leaf/<site>.conf`` for each ``--site``: a nats-server at a remote site that connects to the
  cluster's leaf ports as the agent user (so the site can do no more than an agent may) and lets
  the site's agents connect to it locally.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from cairn.cluster.certs import CA_CERT, host_files
from cairn.kernel.errors import ConfigurationError
from cairn.kernel.natsauth import (
    ADMIN_USER,
    AGENT_USER,
    NatsCredentials,
    authorization_block,
    ensure_credentials,
)
from cairn.kernel.private_files import private_folder, write_private
from cairn.protocol import NATS_TLS_CA_ENV, NATS_URL_ENV

DEFAULT_LEAF_PORT = 7422
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}\Z")
_PORT_RANGE = range(1, 65536)
USERS_SUFFIX = "users.conf"  # nodes/<node>.users.conf: the users file a node's config includes


@dataclass(frozen=True)
class Node:
    """One nats-server of the cluster: where clients, the other nodes and leaf sites reach it."""

    name: str
    host: str
    client_port: int
    cluster_port: int
    leaf_port: int

    @classmethod
    def parse(cls, text: str, default_leaf_port: int = DEFAULT_LEAF_PORT) -> "Node":
        """``NAME=HOST:CLIENT_PORT:CLUSTER_PORT[:LEAF_PORT]`` (``nats1=10.0.0.11:4222:6222``)."""
        name, sep, rest = text.partition("=")
        parts = rest.split(":")
        if not sep or not _NAME.match(name) or len(parts) not in (3, 4) or not parts[0]:
            raise ConfigurationError(f"--node {text!r}: expected NAME=HOST:CLIENT_PORT:CLUSTER_PORT[:LEAF_PORT], "
                                     "e.g. nats1=10.0.0.11:4222:6222")
        ports = [_port(part, text) for part in parts[1:]]
        return cls(name, parts[0], ports[0], ports[1], ports[2] if len(ports) == 3 else default_leaf_port)

    def url(self, tls: bool) -> str:
        return f"{'tls' if tls else 'nats'}://{self.host}:{self.client_port}"


@dataclass(frozen=True)
class Site:
    """A remote site's leaf nats-server: its name and where the site's agents reach it."""

    name: str
    host: str
    port: int

    @classmethod
    def parse(cls, text: str) -> "Site":
        """``NAME=HOST:PORT`` (``gpu-lab=127.0.0.1:4222``)."""
        name, sep, rest = text.partition("=")
        host, _, port = rest.rpartition(":")
        if not sep or not _NAME.match(name) or not host:
            raise ConfigurationError(f"--site {text!r}: expected NAME=HOST:PORT, e.g. gpu-lab=127.0.0.1:4222")
        return cls(name, host, _port(port, text))


def _port(text: str, where: str) -> int:
    if not text.isdigit() or int(text) not in _PORT_RANGE:
        raise ConfigurationError(f"{where!r}: {text!r} is not a port (1-65535)")
    return int(text)


@dataclass(frozen=True)
class ClusterFiles:
    """What :func:`write_cluster` wrote."""

    nodes: dict[str, Path]
    credentials: dict[str, Path]
    env: dict[str, Path]
    leaves: dict[str, Path]
    store_dirs: dict[str, Path]
    users: dict[str, Path]  # node -> the users file its config includes


def write_cluster(out: Path, cluster: str, nodes: list[Node], *, users: tuple[str, ...],
                  services: tuple[str, ...], tls_dir: Path | None = None, replicas: int = 3,
                  sites: list[Site] | tuple[Site, ...] = (), store_root: Path | None = None) -> ClusterFiles:
    """Write every node's config, the credentials, the env files and the leaf sites' configs.

    ``users``: every NATS user (the services, the gateway, the agent and the admin); ``services``:
    the processes that get an env file with their own credentials. ``store_root``: where each
    node keeps its JetStream files (``<store_root>/<node>``; default ``<out>/store``)."""
    _check(cluster, nodes, replicas, sites)
    out = out.resolve()
    tls_dir = tls_dir.resolve() if tls_dir else None
    if tls_dir:
        for node in nodes:
            files = host_files(tls_dir, node.name)
            if not (files.cert.exists() and files.key.exists() and (tls_dir / CA_CERT).exists()):
                raise ConfigurationError(f"no certificate for node {node.name!r} in {tls_dir}: run "
                                         f"cairn cluster certs --out {tls_dir} --host {node.name}=<its IP> first")
    store_root = (store_root or out / "store").resolve()
    credentials = ensure_credentials(out / "creds", users)
    users_block = authorization_block([NatsCredentials.read(path) for path in credentials.values()])
    private_folder(out / "nodes")
    node_files: dict[str, Path] = {}
    users_files: dict[str, Path] = {}
    store_dirs: dict[str, Path] = {}
    for node in nodes:
        store_dirs[node.name] = store_root / node.name
        users_files[node.name] = out / "nodes" / f"{node.name}.{USERS_SUFFIX}"
        # the per-role users only: a node's subscriber sync puts the live subscribers back within
        # a tick (it compares the file with what it should hold)
        write_private(users_files[node.name], users_block)
        text = node_config(cluster, node, nodes, store_dirs[node.name], tls_dir)
        text += f"include {_quote(users_files[node.name].name)}\n"
        node_files[node.name] = out / "nodes" / f"{node.name}.conf"
        write_private(node_files[node.name], text)
    urls = ",".join(node.url(tls_dir is not None) for node in nodes)
    env_files = _write_env_files(out / "env", cluster, urls, replicas, credentials, services, tls_dir)
    leaves: dict[str, Path] = {}
    if sites:
        private_folder(out / "leaf")
        agent = NatsCredentials.read(credentials[AGENT_USER])
        for site in sites:
            leaves[site.name] = out / "leaf" / f"{site.name}.conf"
            write_private(leaves[site.name], leaf_config(site, nodes, agent, tls_dir, store_root / f"leaf-{site.name}"))
    return ClusterFiles(node_files, credentials, env_files, leaves, store_dirs, users_files)


def _check(cluster: str, nodes: list[Node], replicas: int, sites: list[Site] | tuple[Site, ...]) -> None:
    if not _NAME.match(cluster):
        raise ConfigurationError(f"cluster name {cluster!r}: letters, digits, '.', '_' and '-' only")
    names = [node.name for node in nodes] + [site.name for site in sites]
    if len(set(names)) != len(names):
        raise ConfigurationError(f"node and site names must differ from each other: {', '.join(names)}")
    if not 1 <= replicas <= min(len(nodes), 5):
        raise ConfigurationError(f"--replicas {replicas}: JetStream keeps at most one replica per node and at most 5 "
                                 f"({len(nodes)} nodes given); use 3 with 3 or more nodes")
    listeners = [(n.host, port) for n in nodes for port in (n.client_port, n.cluster_port, n.leaf_port)]
    if len(set(listeners)) != len(listeners):
        raise ConfigurationError("two listeners share a host and port; give each node's client, cluster and leaf "
                                 "ports of their own (NAME=HOST:CLIENT:CLUSTER:LEAF)")


def _quote(value: object) -> str:
    """A value as nats-server's config reads it: a JSON string is a valid quoted string there."""
    return json.dumps(str(value))


def _tls_block(tls_dir: Path, cert_name: str, *, verify: bool, indent: str) -> str:
    files = host_files(tls_dir, cert_name)
    lines = [f"cert_file: {_quote(files.cert)}", f"key_file: {_quote(files.key)}",
             f"ca_file: {_quote(tls_dir / CA_CERT)}", "timeout: 5"] + (["verify: true"] if verify else [])
    inner = "".join(f"{indent}  {line}\n" for line in lines)
    return f"{indent}tls {{\n{inner}{indent}}}\n"


def node_config(cluster: str, node: Node, nodes: list[Node], store_dir: Path, tls_dir: Path | None) -> str:
    """One node's nats-server config, without the authorization block (see :func:`write_cluster`)."""
    routes = ", ".join(_quote(f"nats-route://{other.host}:{other.cluster_port}") for other in nodes if other != node)
    text = (f"server_name: {_quote(node.name)}\n"
            f"listen: {_quote(f'{node.host}:{node.client_port}')}\n"
            f"ports_file_dir: {_quote(store_dir)}\n"
            "max_payload: 8MB\n"
            "jetstream {\n"
            f"  store_dir: {_quote(store_dir / 'jetstream')}\n"
            "  sync_interval: always\n"
            "}\n")
    if tls_dir:  # clients authenticate by password over TLS; they need no certificate
        text += _tls_block(tls_dir, node.name, verify=False, indent="")
    text += ("cluster {\n"
             f"  name: {_quote(cluster)}\n"
             f"  listen: {_quote(f'{node.host}:{node.cluster_port}')}\n"
             f"  routes: [{routes}]\n")
    if tls_dir:  # routes verify each other: only a certificate from the cluster's CA may join
        text += _tls_block(tls_dir, node.name, verify=True, indent="  ")
    text += "}\nleafnodes {\n" + f"  listen: {_quote(f'{node.host}:{node.leaf_port}')}\n"
    if tls_dir:
        text += _tls_block(tls_dir, node.name, verify=False, indent="  ")
    return text + "}\n"


def leaf_config(site: Site, nodes: list[Node], agent: NatsCredentials, tls_dir: Path | None, store_dir: Path) -> str:
    """A remote site's nats-server: a leaf connection to every node's leaf port as the agent user
    (the cluster grants the site what an agent may do, nothing more), and a local listener on which
    the site's agents connect with the same user. No JetStream here: agents use none."""
    scheme = "tls" if tls_dir else "nats-leaf"
    urls = ", ".join(_quote(f"{scheme}://{agent.user}:{agent.password}@{n.host}:{n.leaf_port}") for n in nodes)
    remote = [f"urls: [{urls}]"]
    if tls_dir:  # the site needs the CA's certificate only, never its key or a host's
        remote += ["tls {", f"  ca_file: {_quote(tls_dir / CA_CERT)}", "  timeout: 5", "}"]
    return (f"server_name: {_quote(f'leaf-{site.name}')}\n"
            f"listen: {_quote(f'{site.host}:{site.port}')}\n"
            f"ports_file_dir: {_quote(store_dir)}\n"
            "leafnodes {\n  remotes: [\n    {\n" + "".join(f"      {line}\n" for line in remote)
            + "    }\n  ]\n}\n" + authorization_block([agent]))


def _write_env_files(directory: Path, cluster: str, urls: str, replicas: int, credentials: dict[str, Path],
                     services: tuple[str, ...], tls_dir: Path | None) -> dict[str, Path]:
    """An env file per service role and for the agents and the admin (operator tools)."""
    private_folder(directory)
    common = [f"{NATS_URL_ENV}={urls}", f"CAIRN_REPLICAS={replicas}"]
    if tls_dir:
        common.append(f"{NATS_TLS_CA_ENV}={tls_dir / CA_CERT}")
    files: dict[str, Path] = {}
    roles = [*services, ADMIN_USER, AGENT_USER]
    for role in roles:
        lines = [f"# Cairn {role} on NATS cluster {cluster}: source it, or systemd EnvironmentFile=", *common]
        if role == AGENT_USER:  # an agent's NATS user comes from the scheduler, in memory only
            lines = [lines[0], f"CAIRN_AGENT_NATS_URL={urls}", *common[2:]]
        else:
            lines.append(f"CAIRN_NATS_CREDS={credentials[role]}")
        if role == "scheduler":
            lines += [f"CAIRN_SCHEDULER_AGENT_NATS_CREDS={credentials[AGENT_USER]}",
                      f"CAIRN_SCHEDULER_AGENT_NATS_URL={urls}"]
        files[role] = directory / f"{role}.env"
        write_private(files[role], "\n".join(lines) + "\n")
    return files


def read_env_file(path: Path) -> dict[str, str]:
    """The ``NAME=value`` lines of an env file written here (``#`` lines are comments)."""
    values: dict[str, str] = {}
    for line in path.read_text().splitlines():
        name, sep, value = line.strip().partition("=")
        if sep and not name.startswith("#"):
            values[name] = value
    return values
