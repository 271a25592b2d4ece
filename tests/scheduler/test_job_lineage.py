"""A job's lineage from real events: the dataset version it read, the job, its run and the code
snapshot it ran with are linked in the lineage service's graph."""

from __future__ import annotations

import time
from pathlib import Path

from cairn.sdk.client import ApiError, Client
from cairn.sdk.lineage import Lineage


def _refs(answer: dict) -> set[str]:
    return {n["ref"] for n in answer["nodes"]}


def test_a_jobs_run_links_to_its_job_dataset_and_code(client: Client, agents, project: str, queue: str,
                                                       tmp_path: Path) -> None:
    agents.start(queue)
    data = tmp_path / "digits"
    data.mkdir()
    (data / "a.txt").write_text("seven")
    client.artifacts.push_dataset(project, "digits", data)
    code = tmp_path / "code"
    code.mkdir()
    (code / "train.py").write_text("print('trained')\n")
    job = client.submit_job({"command": "python train.py", "code": str(code), "queue": queue,
                             "datasets": ["digits@v1"], "name": "train-digits"}, project)
    assert client.wait_job(project, job["id"], timeout=120)["status"] == "succeeded"
    digest = client.get_job(project, job["id"])["spec"]["code"]["archive_digest"]
    lineage = Lineage(client)
    expected = {f"job:{job['id']}", "dataset:digits@v1", f"blob:{digest}"}
    deadline = time.monotonic() + 30
    while True:  # the lineage projection follows the log asynchronously
        try:
            up = _refs(lineage.upstream(project, f"run:{job['run_id']}"))
        except ApiError:
            up = set()
        if expected <= up or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert expected <= up, up
    assert f"run:{job['run_id']}" in _refs(lineage.impact(project, "dataset:digits@v1"))
