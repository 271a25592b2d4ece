"""What each module gives every service replica, evaluated by Terraform itself (no provider).

``terraform console`` evaluates a module's locals with only what ships inside Terraform: the hosts
module as it is (it has no provider), and for the aws and kubernetes modules (whose providers
cannot be downloaded here) a copy of their variables and of the ``locals`` blocks that compute the
processes' environment, each reference to a provider's resource or data source replaced by a
placeholder string. Checked: where each metrics replica runs, its ``CAIRN_REPLICA``, that every
one gets the same ``CAIRN_WRITER_REPLICAS`` naming them all exactly as they are named
(``main`` for the unnamed first replica; pod names on Kubernetes), that the gateways list every
replica, and that the services that call metrics call its first replica.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

MODULES = Path(__file__).resolve().parents[2] / "infra" / "terraform" / "modules"

pytestmark = pytest.mark.skipif(shutil.which("terraform") is None, reason="terraform is not on PATH")

# A provider's resource or data source, with an index and attributes: aws_lb.gateway.dns_name,
# data.aws_region.current.name, aws_ebs_volume.nats[node.name].id, kubernetes_x.y.metadata[0].name
PROVIDER_REFERENCE = re.compile(r"(?<![\w.])(?:data\.)?(?:aws|kubernetes)_[a-z0-9_]+\.[a-z0-9_]+"
                                r"(?:\[[^\]]*\])?(?:\.[a-z0-9_]+|\[\d+\])*")
LOCALS_BLOCK = re.compile(r"^locals \{\n.*?^\}\n", flags=re.M | re.S)  # terraform fmt: "}" at column 0


def console(directory: Path, expression: str, variables: dict[str, Any], workdir: Path) -> Any:
    """The value of ``jsonencode(expression)`` in ``directory`` as the root module."""
    var_file = workdir / "test.tfvars.json"
    var_file.write_text(json.dumps(variables))
    env = {**os.environ, "TF_DATA_DIR": str(workdir / ".terraform"), "TF_CLI_CONFIG_FILE": os.devnull,
           "CHECKPOINT_DISABLE": "1", "TF_IN_AUTOMATION": "1"}
    done = subprocess.run(["terraform", "console", f"-var-file={var_file}"], cwd=directory, env=env,
                          input=f"jsonencode({expression})\n", capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(json.loads(done.stdout.strip()))


def locals_only(module: str, files: list[str], workdir: Path) -> Path:
    """A copy of a module's variables and the locals blocks of ``files``, without its provider."""
    source = MODULES / module
    copy = workdir / module
    copy.mkdir()
    shutil.copy2(source / "variables.tf", copy / "variables.tf")
    if (source / "templates").is_dir():
        shutil.copytree(source / "templates", copy / "templates")
    for name in files:
        blocks = LOCALS_BLOCK.findall((source / name).read_text())
        assert blocks, f"modules/{module}/{name} has no locals block"
        (copy / name).write_text("\n".join(PROVIDER_REFERENCE.sub('"stub"', block) for block in blocks))
    return copy


def env_file(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines() if line and not line.startswith("#"))


# ---- hosts ------------------------------------------------------------------------------------

HOSTS_MACHINES = [
    {"name": "cairn-1", "address": "10.0.0.11", "roles": ["nats", "services", "gateway"]},
    {"name": "cairn-2", "address": "10.0.0.12", "roles": ["nats", "services", "gateway"]},
    {"name": "cairn-3", "address": "10.0.0.13", "roles": ["nats", "agent"]},
]


def hosts_units(replicas: dict[str, int], workdir: Path, machines: list[dict[str, Any]] | None = None) -> dict[str, dict[str, dict[str, str]]]:
    """machine => unit => its environment, as the hosts module's setup scripts write them."""
    copy = workdir / "hosts"
    shutil.copytree(MODULES / "hosts", copy)
    variables = {"machines": machines or HOSTS_MACHINES, "ssh_private_key_file": "/dev/null",
                 "install_source": "/opt/cairn/venv", "replicas": replicas}
    units = console(copy, "{ for host, units in local.units : host => { for u in units : u.name => u.env } }",
                    variables, workdir)
    return units


@pytest.mark.parametrize("count", [1, 2, 3])
def test_hosts_metrics_replicas_name_every_writer(tmp_path: Path, count: int) -> None:
    units = hosts_units({"metrics": count, "registry": 2}, tmp_path)
    names = ["main", "r2", "r3"][:count]
    found = {unit: (host, env) for host, by_unit in units.items() for unit, env in by_unit.items()
             if unit == "metrics" or unit.startswith("metrics-")}
    expected_units = ["metrics"] + [f"metrics-{name}" for name in names[1:]]
    assert sorted(found) == sorted(expected_units)
    for index, unit in enumerate(expected_units):
        host, env = found[unit]
        assert host == ["cairn-1", "cairn-2"][index % 2]  # round robin over the services machines
        assert env["CAIRN_REPLICA"] == ("" if index == 0 else names[index])
        assert env["CAIRN_WRITER_REPLICAS"] == ",".join(names)
    # each replica's own name is in the list, written "main" for the unnamed one
    assert [found[u][1]["CAIRN_REPLICA"] or "main" for u in expected_units] == names
    # only metrics gets it
    assert all("CAIRN_WRITER_REPLICAS" not in env for by_unit in units.values() for unit, env in by_unit.items()
               if unit not in found)

    first = f"http://10.0.0.11:{found['metrics'][1]['CAIRN_PORT']}"
    gateway = json.loads(units["cairn-1"]["gateway"]["CAIRN_SERVICES"])
    assert gateway == json.loads(units["cairn-2"]["gateway"]["CAIRN_SERVICES"])
    assert gateway["metrics"] == [f"http://{'10.0.0.11' if i % 2 == 0 else '10.0.0.12'}:{found[u][1]['CAIRN_PORT']}"
                                  for i, u in enumerate(expected_units)]
    assert gateway["metrics"][0] == first
    assert units["cairn-1"]["scheduler"]["CAIRN_METRICS_URL"] == first
    assert units["cairn-1"]["pipelines"]["CAIRN_METRICS_URL"] == first


def test_hosts_metrics_replicas_on_one_services_machine_have_ports_of_their_own(tmp_path: Path) -> None:
    machines = [{"name": "solo", "address": "10.0.0.21", "roles": ["nats", "services", "gateway"]}]
    units = hosts_units({"metrics": 2}, tmp_path, machines)["solo"]
    assert units["metrics"]["CAIRN_REPLICA"] == "" and units["metrics-r2"]["CAIRN_REPLICA"] == "r2"
    assert units["metrics"]["CAIRN_WRITER_REPLICAS"] == units["metrics-r2"]["CAIRN_WRITER_REPLICAS"] == "main,r2"
    assert units["metrics"]["CAIRN_PORT"] != units["metrics-r2"]["CAIRN_PORT"]


@pytest.mark.parametrize("replicas,accepted", [({"metrics": 9}, True), ({"metrics": 10}, False),
                                               ({"metrics": 0}, False), ({"artifacts": 2}, False)])
def test_hosts_replicas_validation(tmp_path: Path, replicas: dict[str, int], accepted: bool) -> None:
    copy = tmp_path / "hosts"
    shutil.copytree(MODULES / "hosts", copy)
    var_file = tmp_path / "test.tfvars.json"
    var_file.write_text(json.dumps({"machines": HOSTS_MACHINES, "ssh_private_key_file": "/dev/null",
                                    "install_source": "/opt/cairn/venv", "replicas": replicas}))
    env = {**os.environ, "TF_DATA_DIR": str(tmp_path / ".terraform"), "TF_CLI_CONFIG_FILE": os.devnull,
           "CHECKPOINT_DISABLE": "1"}
    done = subprocess.run(["terraform", "console", f"-var-file={var_file}"], cwd=copy, env=env,
                          input="length(local.replicas)\n", capture_output=True, text=True, timeout=120)
    assert (done.returncode == 0) == accepted, done.stderr
    if not accepted:  # the message, without colours and the box the lines are wrapped in
        message = " ".join(re.sub(r"\x1b\[[0-9;]*m|[│╷╵]", " ", done.stderr).split())
        assert "replicas: 1 to 9, and more than 1 only for registry, metrics," in message, message


# ---- aws --------------------------------------------------------------------------------------

@pytest.mark.parametrize("hosts", [1, 2, 3])
def test_aws_every_services_host_runs_a_metrics_replica_naming_every_writer(tmp_path: Path, hosts: int) -> None:
    copy = locals_only("aws", ["locals.tf", "cloudinit.tf"], tmp_path)
    variables = {"availability_zones": ["eu-central-1a", "eu-central-1b"], "allowed_cidrs": ["203.0.113.0/24"],
                 "certificate_arn": "arn:aws:acm:eu-central-1:123456789012:certificate/x", "service_hosts": hosts}
    files = console(copy, "{ for host, files in local.service_host_files : host => { for f in files : f.path => f.content } }",
                    variables, tmp_path)
    gateway = console(copy, "{ for f in local.gateway_files : f.path => f.content }", variables, tmp_path)
    names = ["main", "r2", "r3"][:hosts]
    assert sorted(files) == [f"svc{i + 1}" for i in range(hosts)]
    urls = []
    for index in range(hosts):
        host = files[f"svc{index + 1}"]
        assert "/etc/systemd/system/cairn-metrics.service" in host
        metrics = env_file(host["/etc/cairn/env/metrics.env"])
        registry = env_file(host["/etc/cairn/env/registry.env"])
        # the same replica name as the host's other services: none on the first, r2, r3 on the others
        assert metrics.get("CAIRN_REPLICA", "") == registry.get("CAIRN_REPLICA", "") == ("" if index == 0 else names[index])
        assert metrics["CAIRN_WRITER_REPLICAS"] == ",".join(names)
        assert (metrics.get("CAIRN_REPLICA") or "main") == names[index]
        assert "CAIRN_WRITER_REPLICAS" not in registry
        urls.append(f"http://{metrics['CAIRN_HOST']}:{metrics['CAIRN_PORT']}")
        if index == 0:
            scheduler = env_file(host["/etc/cairn/env/scheduler.env"])
            pipelines = env_file(host["/etc/cairn/env/pipelines.env"])
    services = json.loads(env_file(gateway["/etc/cairn/env/gateway.env"])["CAIRN_SERVICES"])
    assert services["metrics"] == (urls if hosts > 1 else urls[0])
    assert scheduler["CAIRN_METRICS_URL"] == pipelines["CAIRN_METRICS_URL"] == urls[0]


# ---- kubernetes -------------------------------------------------------------------------------

@pytest.mark.parametrize("replicas", [1, 3])
def test_kubernetes_metrics_is_a_statefulset_whose_pods_name_every_writer(tmp_path: Path, replicas: int) -> None:
    copy = locals_only("kubernetes", ["locals.tf", "services.tf"], tmp_path)
    variables = {"image": "registry.example.com/cairn:0.9.0", "service_replicas": replicas}
    workloads = console(copy, "local.workloads", variables, tmp_path)
    env = console(copy, "local.workload_env", variables, tmp_path)
    assert workloads["metrics"] == {"port": 7003, "stateful": True, "replicas": replicas}
    assert not workloads["artifacts"]["stateful"]  # without artifacts_s3 it runs once
    # CAIRN_REPLICA is the pod's name (stateful.tf: metadata.name), metrics-0 included: the list
    # names the StatefulSet's pods, <name>-<ordinal>
    stateful = (MODULES / "kubernetes" / "stateful.tf").read_text()
    assert re.search(r'name = "CAIRN_REPLICA"\s+value_from \{\s+field_ref \{\s+field_path = "metadata.name"', stateful)
    assert "CAIRN_REPLICA" not in env["metrics"]
    pods = [f"metrics-{index}" for index in range(replicas)]
    assert env["metrics"]["CAIRN_WRITER_REPLICAS"] == ",".join(pods)
    assert all("CAIRN_WRITER_REPLICAS" not in values for name, values in env.items() if name != "metrics")
    services = json.loads(env["gateway"]["CAIRN_SERVICES"])
    assert services["metrics"] == [f"http://{pod}.metrics.cairn.svc.cluster.local:7003" for pod in pods]
    assert env["scheduler"]["CAIRN_METRICS_URL"] == env["pipelines"]["CAIRN_METRICS_URL"] == services["metrics"][0]
    # a new replica list rolls the metrics pods (their environment is in the pod template)
    assert 'sha256(jsonencode(local.workload_env[each.key]))' in stateful
