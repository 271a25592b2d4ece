"""Alert actions that survive a crash, on a platform of this module's own (it kills the monitor
and the deployments service): a rollback is owed from ``alert.fired`` until ``alert.action_taken``
records it, so a monitor killed while the rollback could not be made carries it out after its
restart, once; a rollback the deployments service refuses (nothing to roll back to) is recorded
as failed with its message; and the deployments service honours the idempotency key the monitor
sends, so a rollback call repeated after a kill rolls back once."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from monitor_helpers import deployed_project, monitor_health, samples, send, wait_for
from platform_harness import Platform, read_all_events

RULE = {"name": "errors", "metric": "error_rate", "comparison": ">", "threshold": 0.5, "window": "2s",
        "persistence": {"k": 1, "n": 1}, "cooldown_s": 0, "action": {"rollback": True}}


@pytest.fixture(scope="module")
def admin(platform: Platform) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=f"{platform.gateway}/api/v1", headers=platform.headers, timeout=30) as client:
        yield client


def ahead(windows: int) -> float:
    """The start of the 2s window ``windows`` windows after the current one."""
    return (time.time() // 2) * 2 + 2 * windows


def events(platform: Platform, project: str, event_type: str) -> list[dict[str, Any]]:
    return [e for e in read_all_events(platform.nats_url) if e["project"] == project and e["type"] == event_type]


def rollbacks(platform: Platform, project: str) -> list[dict[str, Any]]:
    return [e for e in events(platform, project, "deployment.version_changed") if e["data"]["why"] == "rollback"]


def alerts(admin: httpx.Client, project: str) -> list[dict[str, Any]]:
    resp = admin.get(f"/monitor/projects/{project}/alerts", params={"state": "all"})
    assert resp.status_code == 200, resp.text
    return list(resp.json()["alerts"])


def health(platform: Platform) -> dict[str, Any]:
    try:
        return monitor_health(platform)
    except httpx.HTTPError:
        return {}


def open_day_requests(admin: httpx.Client, project: str) -> int:
    status = admin.get(f"/monitor/projects/{project}/deployments/fraud/status").json()
    return sum(w["requests"] for w in status["open"] if w["size"] == "1d")


def fire(admin: httpx.Client, project: str, windows_ahead: int) -> float:
    """Send a window of errors ``windows_ahead`` windows from now; returns its end (the alert's)."""
    bad = ahead(windows_ahead)
    send(admin, project, "fraud", samples(project, "fraud", bad + 0.5, 10, status=503))
    wait_for(lambda: open_day_requests(admin, project) == 10, "the monitor to count the errors")
    return bad + 2


def test_a_rollback_owed_when_the_monitor_is_killed_is_carried_out_once_after_restart(
        platform: Platform, admin: httpx.Client) -> None:
    project = deployed_project(admin, f"monact{os.getpid()}", versions=2)
    rule = admin.post(f"/monitor/projects/{project}/deployments/fraud/rules", json=RULE).json()
    end = fire(admin, project, 3)  # closes at least 6.5 s from now: deployments is down by then
    assert not alerts(admin, project), "the window closed before deployments stopped; the test needs it open"
    platform.kill("deployments")

    wait_for(lambda: alerts(admin, project), "alert.fired", timeout=30)
    wait_for(lambda: health(platform).get("action_error"), "the monitor's failed rollback call")
    assert health(platform)["actions_owed"] == 1
    (alert,) = alerts(admin, project)
    assert alert["window"]["end"] == end and alert["action_taken"] == {"outcome": "owed"}
    assert events(platform, project, "alert.action_taken") == [] and rollbacks(platform, project) == []

    platform.kill("monitor")  # the rollback is owed: only the log knows
    platform.start_service("deployments")
    platform.start_service("monitor")
    taken = wait_for(lambda: events(platform, project, "alert.action_taken"), "alert.action_taken after restart")
    (event,) = taken
    assert event["aggregate_id"] == rule["id"] and event["actor"] == "service:monitor"
    assert event["data"]["outcome"] == "done" and event["data"]["window_end"] == end
    assert event["data"]["action"] == {"rollback": True} and "version 1" in event["data"]["detail"]
    wait_for(lambda: health(platform).get("actions_owed") == 0, "no action owed")
    assert health(platform)["action_error"] is None
    (change,) = rollbacks(platform, project)
    assert (change["data"]["from"], change["data"]["to"]) == (2, 1)
    assert change["actor"].startswith("service:monitor")
    assert admin.get(f"/deployments/projects/{project}/deployments/fraud").json()["version"] == 1
    (alert,) = alerts(admin, project)
    assert alert["action_taken"]["outcome"] == "done" and alert["action_taken"]["detail"] == event["data"]["detail"]

    platform.kill("monitor")  # and a restart after it was recorded does nothing more
    platform.start_service("monitor")
    wait_for(lambda: health(platform).get("ready") and health(platform).get("actions_owed") == 0,
             "the restarted monitor to be ready")
    assert len(rollbacks(platform, project)) == 1 and len(events(platform, project, "alert.action_taken")) == 1


def test_a_refused_rollback_is_recorded_as_failed_with_the_message(platform: Platform, admin: httpx.Client) -> None:
    project = deployed_project(admin, f"monrefuse{os.getpid()}", versions=1)  # nothing to roll back to
    admin.post(f"/monitor/projects/{project}/deployments/fraud/rules", json=RULE).raise_for_status()
    end = fire(admin, project, 1)
    (event,) = wait_for(lambda: events(platform, project, "alert.action_taken"), "alert.action_taken")
    assert event["data"]["outcome"] == "failed" and event["data"]["window_end"] == end
    assert event["data"]["detail"].startswith("409: ") and "nothing to roll back to" in event["data"]["detail"]
    (alert,) = wait_for(lambda: [a for a in alerts(admin, project) if a["action_taken"]["outcome"] == "failed"],
                        "the alert listing the failed action")
    assert alert["action_taken"]["detail"] == event["data"]["detail"]
    assert rollbacks(platform, project) == []
    assert admin.get(f"/deployments/projects/{project}/deployments/fraud").json()["version"] == 1


def test_deployments_roll_back_once_for_a_repeated_idempotency_key(platform: Platform, admin: httpx.Client) -> None:
    """What a repeated call of the monitor relies on: the same key twice is one rollback."""
    project = deployed_project(admin, f"monkey{os.getpid()}", versions=2)
    url = f"/deployments/projects/{project}/deployments/fraud/rollback"
    first = admin.post(url, headers={"Idempotency-Key": "alert-rollback.r1.2000"})
    again = admin.post(url, headers={"Idempotency-Key": "alert-rollback.r1.2000"})
    assert first.status_code == again.status_code == 200, (first.text, again.text)
    assert first.json()["version"] == again.json()["version"] == 1
    assert len(rollbacks(platform, project)) == 1
