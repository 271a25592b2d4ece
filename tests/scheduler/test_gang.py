"""Multi-node jobs: all ranks or none, the rendezvous environment, and torch.distributed for real."""

from __future__ import annotations

import importlib.util
import textwrap
from pathlib import Path

import pytest
from agent_pool import wait_until

from cairn.sdk.client import Client

SHOW_ENV = "echo RANK=$RANK NODE_RANK=$NODE_RANK LOCAL_RANK=$LOCAL_RANK WORLD_SIZE=$WORLD_SIZE " \
           "MASTER=$MASTER_ADDR:$MASTER_PORT"


def test_a_two_node_job_waits_for_two_free_agents_then_runs_every_rank_with_the_rendezvous_env(
        client: Client, agents, project: str, queue: str) -> None:
    agents.start(queue)
    job = client.submit_job({"command": ["sh", "-c", SHOW_ENV], "code": "none", "queue": queue, "nodes": 2},
                            project)
    # One agent is live and free: a partial group must not start. A one-node job submitted after it
    # runs on that agent, so the dispatch round that placed it saw the two-node job queued too and
    # left it waiting: a decision observed, not a sleep hoping nothing happens.
    probe = client.submit_job({"command": ["sh", "-c", "true"], "code": "none", "queue": queue}, project)
    assert client.wait_job(project, probe["id"], timeout=60)["status"] == "succeeded"
    waiting = client.get_job(project, job["id"])
    assert waiting["status"] == "queued"
    assert [h["type"] for h in waiting["history"]] == ["job.submitted"]
    agents.start(queue)
    try:
        done = client.wait_job(project, job["id"], timeout=30)
    except TimeoutError:
        raise AssertionError(client.get_job(project, job["id"])) from None
    assert done["status"] == "succeeded", client.job_logs(project, job["id"])
    assert len({r["agent_id"] for r in done["ranks"]}) == 2
    logs = client.job_logs(project, job["id"])
    master = f"MASTER={done['master_addr']}:{done['master_port']}"
    assert f"[rank 0] RANK=0 NODE_RANK=0 LOCAL_RANK=0 WORLD_SIZE=2 {master}" in logs
    assert f"[rank 1] RANK=1 NODE_RANK=1 LOCAL_RANK=0 WORLD_SIZE=2 {master}" in logs
    names = {a["name"] for a in client.artifacts.list_artifacts(project, done["run_id"])}
    assert {"logs/attempt-1-rank-0.log", "logs/attempt-1-rank-1.log"} <= names


def test_a_failing_rank_fails_the_whole_group_and_stops_the_other_rank(
        client: Client, agents, project: str, queue: str) -> None:
    agents.start(queue)
    agents.start(queue)
    script = "if [ $RANK = 1 ]; then exit 5; fi; exec sleep 600"
    job = client.submit_job({"command": ["sh", "-c", script], "code": "none", "queue": queue, "nodes": 2,
                             "max_retries": 1}, project)
    done = client.wait_job(project, job["id"], timeout=90)
    assert done["status"] == "failed" and done["exit_code"] == 5 and done["attempt"] == 2
    types = [h["type"] for h in done["history"]]
    assert types.count("job.assigned") == 2 and types.count("job.retried") == 1
    # rank 0 (sleeping) was stopped each time: no agent holds the job any more
    wait_until(lambda: all(not a.get("running") for a in client.list_agents()), timeout=5, what="agents idle")


TORCH_JOB = textwrap.dedent('''
    import os, torch, torch.distributed as dist, cairn
    dist.init_process_group("gloo")
    rank = dist.get_rank()
    torch.manual_seed(int(os.environ["CAIRN_SEED"]) + rank)
    model = torch.nn.Linear(4, 1)
    for p in model.parameters():  # every rank starts from rank 0's weights
        dist.broadcast(p.data, 0)
    x = torch.randn(8, 4)
    loss = model(x).pow(2).mean()
    loss.backward()
    grads = torch.cat([p.grad.flatten() for p in model.parameters()])
    dist.all_reduce(grads)
    grads /= dist.get_world_size()
    total = float(grads.abs().sum())
    print(f"rank {rank} synced_grad_sum={total:.6f}", flush=True)
    if rank == 0:
        with cairn.start_run() as run:
            run.log_metric("synced_grad_sum", total)
            run.flush()
    dist.destroy_process_group()
''')


@pytest.mark.skipif(importlib.util.find_spec("torch") is None,
                    reason="torch is not installed (the test extra installs torch==2.13.0)")
def test_two_agents_run_a_torch_distributed_job_that_all_reduces_gradients(
        client: Client, agents, project: str, queue: str, tmp_path: Path) -> None:
    agents.start(queue)
    agents.start(queue)
    code = tmp_path / "code"
    code.mkdir()
    (code / "ddp.py").write_text(TORCH_JOB)
    job = client.submit_job({"command": "python ddp.py", "code": str(code), "queue": queue, "nodes": 2, "seed": 3,
                             "timeout": 240, "max_retries": 1}, project)  # a master-port clash retries (docs)
    done = client.wait_job(project, job["id"], timeout=300)
    logs = client.job_logs(project, job["id"])
    assert done["status"] == "succeeded", logs
    sums = {}
    for line in logs.splitlines():
        if "synced_grad_sum=" in line:
            rank = line.split("] rank ")[1].split()[0]
            sums[rank] = line.rsplit("=", 1)[1]
    assert set(sums) == {"0", "1"} and sums["0"] == sums["1"]
    summary = client.metric_summary(project, done["run_id"])
    assert summary["synced_grad_sum"]["last"] == pytest.approx(float(sums["0"]), rel=1e-5)
