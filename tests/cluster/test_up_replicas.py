"""``cairn up --service-replicas N``: which processes it plans and what the gateway is told,
without starting them (a whole platform of replicas was run by hand; see docs/cluster.md).

Why: a replica that shared the first one's replica name would share its read model and its
durable consumer (each would see half the events); the gateway must get every replica's URL."""

from __future__ import annotations

from pathlib import Path

from cairn.up import REPLICABLE, SERVICES, Supervisor, gateway_services, metrics_writers


def test_each_extra_replica_has_a_name_port_and_log_of_its_own(tmp_path: Path) -> None:
    supervisor = Supervisor(data_dir=tmp_path, service_replicas=3, quiet=True)
    services = {name: f"http://127.0.0.1:{9000 + i}" for i, name in enumerate(SERVICES)}
    wiring = {"artifacts": {"CAIRN_ARTIFACTS_DIRECT_URL": services["artifacts"]}, "metrics": metrics_writers(3)}
    replicas = supervisor._replica_children({"CAIRN_DATA_DIR": str(tmp_path)}, wiring, services)
    assert sorted(c.name for c in replicas) == sorted(f"{n}-{k}" for n in REPLICABLE for k in (2, 3))
    assert {c.env["CAIRN_REPLICA"] for c in replicas if c.name.startswith("registry-")} == {"r2", "r3"}
    urls = [c.url for c in replicas]
    assert len(set(urls)) == len(urls) and not set(urls) & set(services.values())
    assert all(c.env["CAIRN_PORT"] == str(c.url).rsplit(":", 1)[1] for c in replicas)
    # an artifacts replica hands out direct transfer URLs of its own, not the first replica's
    assert all(c.env["CAIRN_ARTIFACTS_DIRECT_URL"] == c.url for c in replicas if c.name.startswith("artifacts-"))
    listed = gateway_services(services, replicas)
    assert listed["registry"] == [services["registry"], *(c.url for c in replicas if c.name.startswith("registry-"))]
    assert listed["metrics"] == [services["metrics"], *(c.url for c in replicas if c.name.startswith("metrics-"))]
    # each metrics replica makes the durables of all three on the metrics stream, named as they are
    assert metrics_writers(3) == {"CAIRN_WRITER_REPLICAS": "main,r2,r3"} and metrics_writers(1) == {}
    assert all(c.env["CAIRN_WRITER_REPLICAS"] == "main,r2,r3" for c in replicas if c.name.startswith("metrics-"))


def test_one_replica_plans_no_extra_process(tmp_path: Path) -> None:
    supervisor = Supervisor(data_dir=tmp_path, quiet=True)
    assert supervisor._replica_children({}, {}, {name: "http://127.0.0.1:1" for name in SERVICES}) == []
