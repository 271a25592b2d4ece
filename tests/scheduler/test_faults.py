"""Stopping and losing things: cancel and timeout stop the whole process group; an agent killed
mid-job is marked lost and the job retried elsewhere with one final result; a scheduler killed
with SIGKILL and restarted loses and duplicates no job."""

from __future__ import annotations

import signal
import textwrap
import time
from collections import Counter
from pathlib import Path

from agent_pool import alive, wait_until

from cairn.sdk.client import Client

from platform_harness import read_all_events

# The job's child spawns a grandchild that ignores SIGTERM (so only SIGKILL stops it).
FAMILY = textwrap.dedent('''
    import os, subprocess, sys, time, pathlib
    grandchild = subprocess.Popen([sys.executable, "-c",
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)"])
    pathlib.Path(sys.argv[1]).write_text(f"{os.getpid()} {grandchild.pid}")
    print("family started", flush=True)
    time.sleep(600)
''')


def family_job(tmp_path: Path, queue: str, **extra: object) -> tuple[dict, Path]:
    code = tmp_path / "code"
    code.mkdir()
    (code / "family.py").write_text(FAMILY)
    pids = tmp_path / "pids.txt"
    return {"command": ["python", "family.py", str(pids)], "code": str(code), "queue": queue, **extra}, pids


def test_cancel_stops_the_whole_process_group(client: Client, agents, project: str, queue: str,
                                               tmp_path: Path) -> None:
    agents.start(queue)
    spec, pids_file = family_job(tmp_path, queue)
    job = client.submit_job(spec, project)
    wait_until(lambda: pids_file.exists() and pids_file.read_text(), what="the job's processes")
    pids = [int(p) for p in pids_file.read_text().split()]
    assert all(alive(p) for p in pids)
    client.cancel_job(project, job["id"])
    done = client.wait_job(project, job["id"], timeout=60)
    assert done["status"] == "cancelled"
    wait_until(lambda: not any(alive(p) for p in pids), timeout=30, what="the process group to be gone")
    assert client.get_run(project, job["run_id"])["status"] == "killed"
    assert "family started" in client.job_logs(project, job["id"])


def test_cancel_of_a_queued_job_ends_it_at_once(client: Client, project: str, queue: str) -> None:
    job = client.submit_job({"command": "true", "code": "none", "queue": queue}, project)  # no agent on it
    assert client.cancel_job(project, job["id"])["status"] == "cancelled"
    assert client.get_run(project, job["run_id"])["status"] == "killed"


def test_timeout_stops_the_process_group_and_fails_the_job(client: Client, agents, project: str, queue: str,
                                                           tmp_path: Path) -> None:
    agents.start(queue)
    spec, pids_file = family_job(tmp_path, queue, timeout=3)
    job = client.submit_job(spec, project)
    wait_until(lambda: pids_file.exists() and pids_file.read_text(), what="the job's processes")
    pids = [int(p) for p in pids_file.read_text().split()]
    done = client.wait_job(project, job["id"], timeout=60)
    assert done["status"] == "failed" and done["reason"] == "timeout"
    wait_until(lambda: not any(alive(p) for p in pids), timeout=30, what="the process group to be gone")
    assert "timed out" in client.job_logs(project, job["id"])


def test_an_agent_killed_mid_job_is_lost_and_the_job_retried_elsewhere_once(
        client: Client, agents, project: str, queue: str, tmp_path: Path) -> None:
    first = agents.start(queue)
    marker = tmp_path / "attempts"
    marker.mkdir()
    script = (f"echo $$ > {marker}/$CAIRN_ATTEMPT; "
              "if [ $CAIRN_ATTEMPT = 1 ]; then exec sleep 600; fi; echo finished")
    job = client.submit_job({"command": ["sh", "-c", script], "code": "none", "queue": queue}, project)
    wait_until(lambda: (marker / "1").exists() and (marker / "1").read_text(), what="attempt 1 to start")
    orphan = int((marker / "1").read_text())
    second = agents.start(queue)
    first.kill()
    done = client.wait_job(project, job["id"], timeout=90)
    assert done["status"] == "succeeded" and done["attempt"] == 2
    assert done["ranks"][0]["agent_id"] == second.agent_id
    types = [h["type"] for h in done["history"]]
    assert types.count("job.lost") == 1 and types.count("job.retried") == 1 and types.count("job.succeeded") == 1
    agent_states = {a["id"]: a["status"] for a in client.list_agents(include_lost=True)}
    assert agent_states[first.agent_id] == "lost"
    assert client.get_run(project, job["run_id"])["status"] == "finished"
    wait_until(lambda: not alive(orphan), timeout=10, what="the lost attempt's process to die with its agent")


def test_a_scheduler_killed_and_restarted_loses_and_duplicates_no_job(
        client: Client, agents, platform, project: str, queue: str) -> None:
    agents.start(queue, cpus=4)
    agents.start(queue, cpus=4)
    ids = [client.submit_job({"command": ["sh", "-c", "sleep 0.3; echo ok $CAIRN_JOB_ID"], "code": "none",
                              "queue": queue, "resources": {"cpus": 1}}, project)["id"] for _ in range(12)]
    wait_until(lambda: any(j["status"] != "queued" for j in client.list_jobs(project)), what="some job to run")
    platform.kill("scheduler")
    time.sleep(1.0)  # agents finish jobs and keep retrying their reports meanwhile
    platform.start_service("scheduler")
    platform.wait_healthy()
    for job_id in ids:
        assert client.wait_job(project, job_id, timeout=120)["status"] == "succeeded"
    events = [e for e in read_all_events(platform.nats_url) if e["project"] == project and e["aggregate"] == "job"]
    counts = Counter((e["aggregate_id"], e["type"]) for e in events)
    for job_id in ids:
        assert counts[(job_id, "job.submitted")] == 1
        assert counts[(job_id, "job.succeeded")] == 1
        assert counts[(job_id, "job.started")] == 1 + counts[(job_id, "job.retried")]
    assert len(client.list_jobs(project)) == len(ids)


def test_a_paused_agent_that_comes_back_late_is_fenced_and_the_job_counts_once(
        client: Client, agents, platform, project: str, queue: str) -> None:
    late = agents.start(queue)
    job = client.submit_job({"command": ["sh", "-c", "echo start $CAIRN_ATTEMPT; sleep 5; echo end $CAIRN_ATTEMPT"],
                             "code": "none", "queue": queue}, project)
    wait_until(lambda: client.get_job(project, job["id"])["status"] == "running", what="attempt 1 to run")
    other = agents.start(queue)
    late.proc.send_signal(signal.SIGSTOP)  # silent, not dead: its job process keeps going
    try:
        wait_until(lambda: client.get_job(project, job["id"])["attempt"] == 2
                   and client.get_job(project, job["id"])["status"] == "running", timeout=60,
                   what="attempt 2 to run on the other agent")
    finally:
        late.proc.send_signal(signal.SIGCONT)  # back: it will report attempt 1 as done
    done = client.wait_job(project, job["id"], timeout=60)
    assert done["status"] == "succeeded" and done["attempt"] == 2
    assert done["ranks"][0]["agent_id"] == other.agent_id
    events = [e for e in read_all_events(platform.nats_url) if e["aggregate_id"] == job["id"]]
    assert [e["type"] for e in events].count("job.succeeded") == 1
    assert all(e["data"].get("attempt") != 1 for e in events if e["type"] in ("job.succeeded", "job.failed"))
    wait_until(lambda: "refused" in late.log.read_text(), timeout=30, what="the late report to be refused")
    wait_until(lambda: any(a["id"] == late.agent_id and a["status"] == "active"
                           for a in client.list_agents(include_lost=True)), timeout=30,
               what="the late agent to register again")


def test_an_agent_stopped_gracefully_hands_its_job_back_without_using_up_retries(
        client: Client, agents, project: str, queue: str, tmp_path: Path) -> None:
    leaving = agents.start(queue)
    script = f"echo $CAIRN_ATTEMPT > {tmp_path}/$CAIRN_ATTEMPT; if [ $CAIRN_ATTEMPT = 1 ]; then exec sleep 600; fi"
    job = client.submit_job({"command": ["sh", "-c", script], "code": "none", "queue": queue, "max_retries": 0},
                            project)
    wait_until(lambda: (tmp_path / "1").exists(), what="attempt 1 to start")
    staying = agents.start(queue)
    leaving.stop()  # SIGTERM: the agent stops its job's process group and reports
    done = client.wait_job(project, job["id"], timeout=90)
    assert done["status"] == "succeeded" and done["attempt"] == 2
    assert done["ranks"][0]["agent_id"] == staying.agent_id
    assert done["failures"] == 0 and done["losses"] == 1
