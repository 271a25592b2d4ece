"""The NATS configs the aws and kubernetes modules make on their machines, made for real here.

Both modules run `cairn cluster config` where the NATS server runs instead of shipping configs of
their own, each with a twist this file checks with the real CLI and `nats-server -t`:

- aws (templates/bootstrap.sh.tftpl): a node holds only its own key, so the other nodes'
  certificate names are links to its own files; `cairn cluster config` must accept that, keep the
  credentials the first node made (every node lists the same users), and name the node's own files;
- kubernetes (nats.tf): every pod gets the one server certificate under each node's name, and
  the listen addresses (the pods' DNS names) are rewritten to every address by the module's sed.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

from click.testing import CliRunner

from cairn.cli.main import cli
from cairn.natsserver import nats_server_binary

TERRAFORM = Path(__file__).resolve().parents[2] / "infra" / "terraform"
NODES = ("nats1", "nats2", "nats3")


def _cairn(*args: str) -> None:
    result = CliRunner().invoke(cli, ["--json", *args], catch_exceptions=False)
    assert result.exit_code == 0, result.output


def _nats_server_accepts(config: Path) -> None:
    checked = subprocess.run([nats_server_binary(), "-t", "-c", str(config)], capture_output=True, text=True, timeout=60)
    assert checked.returncode == 0, f"nats-server -t {config}: {checked.stdout}{checked.stderr}"


def _node_args(hosts: dict[str, str]) -> list[str]:
    return [arg for name, host in hosts.items() for arg in ("--node", f"{name}={host}:4222:6222:7422")]


def test_aws_node_with_only_its_own_key_keeps_the_first_nodes_users(tmp_path: Path) -> None:
    hosts = {name: f"10.40.0.{10 + index}" for index, name in enumerate(NODES)}
    made = tmp_path / "first-node"  # what cairn_secrets.py generate makes and puts into SSM
    _cairn("cluster", "certs", "--out", str(made / "tls"), "--name", "prod",
           *[arg for name, ip in hosts.items() for arg in ("--host", f"{name}={ip}")])
    _cairn("cluster", "config", "--out", str(made / "nats"), "--name", "prod", "--tls-dir", str(made / "tls"),
           "--replicas", "3", "--store-dir", str(tmp_path / "store"), *_node_args(hosts), "--site", "lab=0.0.0.0:4222")

    node = tmp_path / "nats2"  # what cairn_secrets.py fetch writes on the second node
    (node / "tls").mkdir(parents=True)
    (node / "nats" / "creds").mkdir(parents=True)
    for name in ("ca.pem", "nats2.pem", "nats2-key.pem"):
        shutil.copy2(made / "tls" / name, node / "tls" / name)
    for creds in (made / "nats" / "creds").glob("*.json"):
        shutil.copy2(creds, node / "nats" / "creds" / creds.name)
    for other in ("nats1", "nats3"):  # as the boot script links them
        (node / "tls" / f"{other}.pem").symlink_to("nats2.pem")
        (node / "tls" / f"{other}-key.pem").symlink_to("nats2-key.pem")
    _cairn("cluster", "config", "--out", str(node / "nats"), "--name", "prod", "--tls-dir", str(node / "tls"),
           "--replicas", "3", "--store-dir", str(tmp_path / "store"), *_node_args(hosts))

    for creds in (made / "nats" / "creds").glob("*.json"):
        assert json.loads((node / "nats" / "creds" / creds.name).read_text()) == json.loads(creds.read_text())
    config = (node / "nats" / "nodes" / "nats2.conf").read_text()
    assert f'"{node / "tls" / "nats2.pem"}"' in config and f'"{node / "tls" / "nats2-key.pem"}"' in config
    assert "nats1.pem" not in config and "nats1-key.pem" not in config
    _nats_server_accepts(node / "nats" / "nodes" / "nats2.conf")
    # The leaf site's config the first node put into SSM: it dials every node's leaf port.
    leaf = (made / "nats" / "leaf" / "lab.conf").read_text()
    assert all(f"@{ip}:7422" in leaf for ip in hosts.values()) and '"0.0.0.0:4222"' in leaf


def test_kubernetes_config_step_listens_on_every_address_with_the_shared_certificate(tmp_path: Path) -> None:
    pods = {f"nats-{index}": f"nats-{index}.nats.cairn.svc.cluster.local" for index in range(3)}
    made = tmp_path / "made"  # stands in for the Secret cairn-nats-tls (one certificate for every pod)
    _cairn("cluster", "certs", "--out", str(made), "--name", "k8s", "--host", "nats-0=10.0.0.1")
    tls = tmp_path / "tls"
    tls.mkdir()
    shutil.copy2(made / "ca.pem", tls / "ca.pem")
    for pod in pods:  # as the init container copies nats.pem / nats-key.pem under every pod's name
        shutil.copy2(made / "nats-0.pem", tls / f"{pod}.pem")
        shutil.copy2(made / "nats-0-key.pem", tls / f"{pod}-key.pem")
    _cairn("cluster", "config", "--out", str(tmp_path / "nats"), "--name", "k8s", "--tls-dir", str(tls),
           "--replicas", "3", "--store-dir", str(tmp_path / "data"), *_node_args(pods))

    # The module's own sed expression, taken from nats.tf (HCL string escapes undone).
    source = (TERRAFORM / "modules" / "kubernetes" / "nats.tf").read_text()
    match = re.search(r"\"sed -i -E '(.*?)' /etc/cairn/nats/nodes/\*\.conf\"", source)
    assert match, "nats.tf no longer rewrites the listen addresses with sed"
    expression = match.group(1).replace('\\"', '"').replace("\\\\", "\\")
    configs = sorted(c for c in (tmp_path / "nats" / "nodes").glob("*.conf") if not c.name.endswith(".users.conf"))
    assert len(configs) == len(pods)
    subprocess.run(["sed", "-i", "-E", expression, *map(str, configs)], check=True, timeout=30)

    for config in configs:
        text = config.read_text()
        listens = re.findall(r'^\s*listen: "([^"]*)"$', text, flags=re.M)
        assert listens == ["0.0.0.0:4222", "0.0.0.0:6222", "0.0.0.0:7422"], (config.name, listens)
        routes = re.search(r"routes: \[(.*)\]", text)
        assert routes and all(f"nats-route://{host}:6222" in routes.group(1)
                              for pod, host in pods.items() if pod != config.stem)
        _nats_server_accepts(config)
