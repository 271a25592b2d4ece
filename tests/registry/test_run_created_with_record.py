"""A run created together with its reproducibility record (what the scheduler does for a job):
one command, both events appended atomically; a bad record creates nothing; a repeat is one run."""

from __future__ import annotations

import httpx

CODE = {"archive_digest": "ab" * 32, "archive_bytes": 10, "files": 1, "commit": "c0ffee", "branch": "main"}


def _runs(api: httpx.Client, project: str) -> list[dict]:
    return api.get(f"/projects/{project}/runs").json()["runs"]


def test_a_run_created_with_its_record_has_both(api: httpx.Client, project: str) -> None:
    body = {"name": "job-1", "start": False,
            "record": {"code": CODE, "command": ["python", "train.py"], "seeds": {"seed": 7}}}
    resp = api.post(f"/projects/{project}/runs", json=body, headers={"Idempotency-Key": "job-run-1"})
    assert resp.status_code == 201, resp.text
    run = resp.json()
    assert run["status"] == "scheduled"
    record = api.get(f"/projects/{project}/runs/{run['id']}/environment").json()
    assert record["command"] == ["python", "train.py"] and record["seeds"] == {"seed": 7}
    assert record["code"]["commit"] == "c0ffee"
    again = api.post(f"/projects/{project}/runs", json=body, headers={"Idempotency-Key": "job-run-1"})
    assert again.status_code == 201 and again.json()["id"] == run["id"]
    assert [r["id"] for r in _runs(api, project)] == [run["id"]]
    # the record is the run's: the job's own start_run adds its environment, a different command is refused
    added = api.put(f"/projects/{project}/runs/{run['id']}/environment", json={"environment": {"python": "3.11"}})
    assert added.status_code == 200, added.text
    changed = api.put(f"/projects/{project}/runs/{run['id']}/environment", json={"command": ["other"]})
    assert changed.status_code == 409


def test_a_bad_record_creates_no_run(api: httpx.Client, project: str) -> None:
    for record, status in (({"code": {"archive_digest": "not-hex"}}, 422), ({}, 422),
                           ({"command": ["x"], "seeds": {"": 1}}, 422)):
        resp = api.post(f"/projects/{project}/runs", json={"name": "bad", "record": record})
        assert resp.status_code == status, (record, resp.text)
        assert "error" in resp.json()
    assert _runs(api, project) == []
