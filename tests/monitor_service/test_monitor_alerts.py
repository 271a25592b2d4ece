"""Alerts end to end on a platform of this module's own (it kills the monitor and leaves webhook
deliveries behind): an error-rate rule fires on a window of samples sent the way a replica sends
them, ``alert.fired`` (with the numbers) reaches a webhook receiver, the rule's rollback action
rolls the deployment back, and the alert resolves on a healthy window. SIGKILL of the monitor
mid-window and after a firing loses no sample, counts none twice and never fires twice."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from webhook_receivers import Receiver

from monitor_helpers import deployed_project, monitor_health, samples, send, wait_for
from platform_harness import Platform, read_all_events

RULE = {"name": "errors", "metric": "error_rate", "comparison": ">", "threshold": 0.5, "window": "2s",
        "persistence": {"k": 1, "n": 1}, "cooldown_s": 0}


@pytest.fixture(scope="module")
def admin(platform: Platform) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=f"{platform.gateway}/api/v1", headers=platform.headers, timeout=30) as client:
        yield client


def ahead(windows: int) -> float:
    """The start of the 2s window ``windows`` windows after the current one: samples stamped
    there are all in before the clock can close it."""
    return (time.time() // 2) * 2 + 2 * windows


def alerts(admin: httpx.Client, project: str, state: str = "all") -> list[dict[str, Any]]:
    return list(admin.get(f"/monitor/projects/{project}/alerts", params={"state": state}).json()["alerts"])


def fired_events(platform: Platform, project: str) -> list[dict[str, Any]]:
    return [e for e in read_all_events(platform.nats_url) if e["project"] == project and e["type"] == "alert.fired"]


def test_an_error_rate_rule_fires_to_a_webhook_rolls_back_and_resolves(platform: Platform,
                                                                      admin: httpx.Client) -> None:
    project = deployed_project(admin, f"monalert{os.getpid()}", versions=2)
    receiver = Receiver()
    try:
        admin.post(f"/projects/{project}/webhooks", json={"url": receiver.url, "types": ["alert.*"]}).raise_for_status()
        rule = admin.post(f"/monitor/projects/{project}/deployments/fraud/rules",
                          json={**RULE, "action": {"rollback": True}}).json()
        bad = ahead(1)
        send(admin, project, "fraud", samples(project, "fraud", bad + 0.5, 8, status=503)
             + samples(project, "fraud", bad + 0.6, 2, start=8))
        wait_for(lambda: any(e["type"] == "alert.fired" for e, _, _ in receiver.received), "alert.fired at the webhook")
        fired = next(e for e, _, _ in receiver.received if e["type"] == "alert.fired")
        data = fired["data"]
        assert fired["aggregate_id"] == rule["id"] and data["rule_id"] == rule["id"]
        assert (data["value"], data["threshold"], data["comparison"]) == (0.8, 0.5, ">")
        assert data["window"] == {"size": "2s", "start": bad, "end": bad + 2}
        assert data["persistence"] == {"k": 1, "n": 1, "breaches": 1}
        assert data["history"] == [{"start": bad, "end": bad + 2, "value": 0.8, "breached": True}]
        assert data["action"] == {"rollback": True}

        config = wait_for(lambda: (c := admin.get(f"/deployments/projects/{project}/deployments/fraud").json())
                          ["version"] == 1 and c, "the rollback to version 1")
        assert config["previous_version"] == 2
        (open_alert,) = alerts(admin, project, "open")
        assert open_alert["rule_id"] == rule["id"] and open_alert["value"] == 0.8
        (listed,) = admin.get(f"/monitor/projects/{project}/deployments/fraud/rules").json()["rules"]
        assert listed["firing"] and listed["last_fired_end"] == bad + 2
        assert listed["history"] == [{"start": bad, "end": bad + 2, "value": 0.8, "breached": True}]

        good = ahead(1)
        send(admin, project, "fraud", samples(project, "fraud", good + 0.5, 10))
        wait_for(lambda: any(e["type"] == "alert.resolved" for e, _, _ in receiver.received),
                 "alert.resolved at the webhook")
        resolved = next(e for e, _, _ in receiver.received if e["type"] == "alert.resolved")
        assert resolved["data"]["value"] == 0.0 and resolved["data"]["fired_window_end"] == bad + 2
        assert alerts(admin, project, "open") == []
        assert [a["state"] for a in alerts(admin, project)] == ["resolved"]
        changes = [e for e in read_all_events(platform.nats_url)
                   if e["project"] == project and e["type"] == "deployment.version_changed" and
                   e["data"]["why"] == "rollback"]
        assert len(changes) == 1 and changes[0]["actor"].startswith("service:monitor")
    finally:
        receiver.close()


def day_requests(admin: httpx.Client, project: str) -> int:
    status = admin.get(f"/monitor/projects/{project}/deployments/fraud/status").json()
    open_days = sum(w["requests"] for w in status["open"] if w["size"] == "1d")
    closed_days = admin.get(f"/monitor/projects/{project}/deployments/fraud/windows",
                            params={"size": "1d", "since": "2d"}).json()["windows"]
    return open_days + sum(w["requests"] for w in closed_days)


def settled(platform: Platform) -> bool:
    try:
        health = monitor_health(platform)
    except httpx.HTTPError:
        return False
    return bool(health.get("ready")) and health["consumer_lag"] == 0 and health["pending_decisions"] == 0


def test_sigkill_mid_window_and_after_a_firing_loses_nothing_and_fires_once(platform: Platform,
                                                                             admin: httpx.Client) -> None:
    project = deployed_project(admin, f"monkill{os.getpid()}")
    rule = admin.post(f"/monitor/projects/{project}/deployments/fraud/rules", json=RULE).json()
    bad = ahead(3)  # closes at least 6.5 s from now: the kill below comes while it is open
    send(admin, project, "fraud", samples(project, "fraud", bad + 0.5, 10, status=500))
    send(admin, project, "fraud", samples(project, "fraud", time.time(), 50, start=10))
    wait_for(lambda: day_requests(admin, project) == 60, "the monitor to count 60 requests")
    assert not alerts(admin, project), "the bad window closed before the kill; the test needs it open"
    platform.kill("monitor")

    send(admin, project, "fraud", samples(project, "fraud", time.time(), 20, start=60))  # while it is down
    platform.start_service("monitor")
    # "all", not "open": on a slow machine the samples sent later may land in a healthy window after
    # the bad one, which resolves the alert before the test reads it (fired once all the same)
    wait_for(lambda: alerts(admin, project), "the alert on the window that was open at the kill")
    (alert,) = alerts(admin, project)
    assert alert["rule_id"] == rule["id"] and alert["value"] == 1.0 and alert["window"]["start"] == bad

    platform.kill("monitor")
    send(admin, project, "fraud", samples(project, "fraud", time.time(), 20, start=80))
    platform.start_service("monitor")
    wait_for(lambda: settled(platform), "the restarted monitor to catch up")
    wait_for(lambda: day_requests(admin, project) == 100, "the monitor to count 100 requests")
    assert day_requests(admin, project) == 100
    bad_window = [w for w in admin.get(f"/monitor/projects/{project}/deployments/fraud/windows",
                                       params={"size": "2s", "since": "1h"}).json()["windows"] if w["start"] == bad]
    assert [(w["requests"], w["errors"]) for w in bad_window] == [(10, 10)]
    assert len(fired_events(platform, project)) == 1
    assert [a["fired_seq"] for a in alerts(admin, project)] == [alert["fired_seq"]]  # the same one alert, never a second
