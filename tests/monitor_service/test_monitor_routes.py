"""The monitor's routes through the gateway on the shared platform: roles (viewer reads, editor
changes; 401 without a token, the not-a-member 404 outside the project), bad rules are a 422
naming the field and append nothing, and windows made from samples sent the way a replica sends
them (counts, error rate, latency quantiles), queried by time range and downsampled."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator

import httpx
import pytest

from cairn.monitor import profile

from monitor_helpers import (
    closed_windows,
    deployed_project,
    next_window_start,
    samples,
    send,
    wait_for,
)
from platform_harness import Platform, stream_last_seq

pytestmark = pytest.mark.shared_stack

PROJECT = f"monroutes{os.getpid()}"
RULE = {"name": "slow", "metric": "latency_p99_ms", "comparison": ">", "threshold": 250, "window": "2s",
        "persistence": {"k": 2, "n": 3}, "cooldown_s": 60}


@pytest.fixture(scope="module")
def admin(platform: Platform) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=f"{platform.gateway}/api/v1", headers=platform.headers, timeout=30) as client:
        deployed_project(client, PROJECT)
        yield client


def member(platform: Platform, admin: httpx.Client, role: str) -> httpx.Client:
    user = f"mon-{role}-{os.getpid()}"
    token = admin.post("/tokens", json={"user": user}).json()["token"]
    admin.post(f"/projects/{PROJECT}/members", json={"user": user, "role": role}).raise_for_status()
    return httpx.Client(base_url=f"{platform.gateway}/api/v1", headers={"Authorization": f"Bearer {token}"},
                        timeout=30)


def rules_url(deployment: str = "fraud") -> str:
    return f"/monitor/projects/{PROJECT}/deployments/{deployment}/rules"


def test_an_editor_creates_changes_and_deletes_rules_and_a_viewer_only_reads(platform: Platform,
                                                                                admin: httpx.Client) -> None:
    editor, viewer = member(platform, admin, "editor"), member(platform, admin, "viewer")
    created = editor.post(rules_url(), json=RULE)
    assert created.status_code == 201, created.text
    rule = created.json()
    assert rule["threshold"] == 250 and rule["persistence"] == {"k": 2, "n": 3} and rule["firing"] is False
    assert [r["id"] for r in viewer.get(rules_url()).json()["rules"]] == [rule["id"]]

    before = stream_last_seq(platform)
    assert viewer.post(rules_url(), json=RULE).status_code == 403
    assert viewer.patch(f"{rules_url()}/{rule['id']}", json={"threshold": 1}).status_code == 403
    assert viewer.delete(f"{rules_url()}/{rule['id']}").status_code == 403
    assert httpx.get(f"{platform.gateway}/api/v1{rules_url()}", timeout=10).status_code == 401
    assert stream_last_seq(platform) == before

    changed = editor.patch(f"{rules_url()}/{rule['id']}", json={"threshold": 300, "persistence": {"k": 1, "n": 1}})
    assert changed.status_code == 200, changed.text
    assert changed.json()["threshold"] == 300 and changed.json()["metric"] == "latency_p99_ms"
    assert editor.delete(f"{rules_url()}/{rule['id']}").status_code == 204
    assert viewer.get(rules_url()).json()["rules"] == []
    assert editor.delete(f"{rules_url()}/{rule['id']}").status_code == 404


def test_someone_outside_the_project_gets_the_not_a_member_answer(platform: Platform, admin: httpx.Client) -> None:
    token = admin.post("/tokens", json={"user": f"mon-outsider-{os.getpid()}"}).json()["token"]
    resp = httpx.get(f"{platform.gateway}/api/v1/monitor/projects/{PROJECT}/alerts",
                     headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert resp.status_code == 404 and "not a member" in resp.text


@pytest.mark.parametrize(("change", "field"), [
    ({"window": "5m"}, "window"), ({"metric": "latency_p42"}, "metric"), ({"comparison": "=="}, "comparison"),
    ({"persistence": {"k": 3, "n": 2}}, "persistence"), ({"column": "amount"}, "column"),
    ({"action": {"rollback": "yes"}}, "action"), ({"threshold": "high"}, "threshold"),
    ({"surprise": 1}, "surprise"),
])
def test_a_bad_rule_is_a_422_naming_the_field_and_appends_nothing(platform: Platform, admin: httpx.Client,
                                                                   change: dict, field: str) -> None:
    before = stream_last_seq(platform)
    resp = admin.post(rules_url(), json={**RULE, **change})
    assert resp.status_code == 422, resp.text
    assert field in resp.text
    assert stream_last_seq(platform) == before
    assert admin.get(rules_url()).json()["rules"] == []


def test_rules_and_references_of_a_deployment_that_does_not_exist_are_404(admin: httpx.Client) -> None:
    assert admin.post(rules_url("nosuch"), json=RULE).status_code == 404
    resp = admin.put(f"/monitor/projects/{PROJECT}/deployments/fraud/reference", json={"profile": "cd" * 32})
    assert resp.status_code == 404 and "not registered" in resp.text
    reference = admin.get(f"/monitor/projects/{PROJECT}/deployments/fraud/reference").json()
    assert reference == {"deployment": "fraud", "profile": None, "chosen": None}


def test_window_queries_check_their_parameters(admin: httpx.Client) -> None:
    base = f"/monitor/projects/{PROJECT}/deployments/fraud"
    for params, field in (({"size": "7m"}, "size"), ({"since": "soon"}, "since"), ({"until": "later"}, "until"),
                          ({"max_points": 0}, "max_points")):
        resp = admin.get(f"{base}/windows", params=params)
        assert resp.status_code == 422 and field in resp.text, resp.text
    assert admin.get(f"/monitor/projects/{PROJECT}/alerts", params={"state": "closed"}).status_code == 422


def test_windows_count_the_samples_a_replica_sends(admin: httpx.Client) -> None:
    start = next_window_start()
    send(admin, PROJECT, "fraud", samples(PROJECT, "fraud", start + 0.1, 90, latency_ms=10.0)
         + samples(PROJECT, "fraud", start + 0.2, 10, status=500, latency_ms=400.0, start=90))
    window = wait_for(lambda: [w for w in closed_windows(admin, PROJECT, "fraud") if w["start"] == start],
                      "the 2s window to close")[0]
    assert (window["requests"], window["errors"], window["error_rate"]) == (100, 10, 0.1)
    assert window["end"] == start + 2
    assert window["latency_p50_ms"] == pytest.approx(10.0, rel=0.02)
    assert window["latency_p99_ms"] == pytest.approx(400.0, rel=0.02)
    status = admin.get(f"/monitor/projects/{PROJECT}/deployments/fraud/status").json()
    assert status["windows"]["2s"]["start"] >= start and status["alerts"] == []
    day = [w for w in status["open"] if w["size"] == "1d"]
    assert day and day[0]["requests"] >= 100
    one = admin.get(f"/monitor/projects/{PROJECT}/deployments/fraud/windows",
                    params={"size": "2s", "since": "1h", "max_points": 1}).json()["windows"]
    assert len(one) == 1 and one[0]["requests"] >= 100


def test_a_registered_reference_gives_windows_their_drift(platform: Platform, admin: httpx.Client) -> None:
    """Profiles are registered once by digest, a bad one is a 422, and the reference a
    deployment is set to is what its windows drift against (needs cairn.monitor)."""
    import numpy as np
    import pandas as pd

    reference = profile.profile_table(pd.DataFrame({"amount": np.random.default_rng(5).normal(0, 1, 300),
                                                    "country": ["de"] * 300}))
    body = {"profile": json.loads(reference.to_json()), "source": {"dataset": "fraud", "version": 3}}
    before = stream_last_seq(platform)
    bad = admin.post(f"/monitor/projects/{PROJECT}/profiles", json={**body, "profile": {"rows": -1}})
    assert bad.status_code == 422 and "profile" in bad.text
    assert admin.post(f"/monitor/projects/{PROJECT}/profiles", json={**body, "source": {"x": 1}}).status_code == 422
    # a lone surrogate is valid JSON text but no Unicode (found by the API fuzz): a 422, not a 500
    lone = admin.post(f"/monitor/projects/{PROJECT}/profiles", headers={"Content-Type": "application/json"},
                      content=b'{"profile": {"columns": {"\\ud93e": 1}}, "source": {}}')
    assert lone.status_code == 422 and "Unicode" in lone.text, lone.text
    assert stream_last_seq(platform) == before
    created = admin.post(f"/monitor/projects/{PROJECT}/profiles", json=body)
    assert created.status_code == 201, created.text
    digest = created.json()["digest"]
    assert digest == reference.digest()
    assert admin.post(f"/monitor/projects/{PROJECT}/profiles", json=body).json() == {"digest": digest}
    assert [p["digest"] for p in admin.get(f"/monitor/projects/{PROJECT}/profiles").json()["profiles"]] == [digest]
    assert admin.get(f"/monitor/projects/{PROJECT}/profiles/{digest}").content == reference.to_json()

    base = f"/monitor/projects/{PROJECT}/deployments/fraud"
    assert admin.put(f"{base}/reference", json={"profile": digest}).json()["chosen"] == "set"
    start = next_window_start()
    shifted = samples(PROJECT, "fraud", start + 0.1, 100)
    for i, item in enumerate(shifted):
        item.features["amount"] = [5.0 + i / 100]
    send(admin, PROJECT, "fraud", shifted)
    wait_for(lambda: [w for w in closed_windows(admin, PROJECT, "fraud") if w["start"] == start],
             "the shifted window to close")
    drift = admin.get(f"{base}/drift", params={"size": "2s", "since": "1h", "column": "amount"}).json()["windows"]
    (window,) = [w for w in drift if w["start"] == start]
    assert window["drift"]["reference"] == digest
    assert list(window["drift"]["columns"]) == ["amount"] and window["drift"]["columns"]["amount"]["drifted"]
    assert admin.get(f"{base}/status").json()["reference"]["profile"] == digest
