"""The monitor end to end with a served model (issue 20, "Tests"): a Python-function model is
logged, deployed with a sample rate of 1.0 and served by a real ``cairn serve`` replica, whose
sampled requests reach the inference log through the deployments relay. The reference is the
profile of the training table (``profile_table`` + ``Client.register_profile`` +
``set_reference``), the rule is ``drift_share >= 0.5`` on 2 s windows, and a webhook receives
``alert.*``. Unshifted traffic closes windows without drift and fires nothing; a mean shift on
one feature fires ``alert.fired`` at the webhook, on at most the second window that holds
shifted traffic.

A platform of this module's own: the webhook subscription leaves deliveries in the background."""

from __future__ import annotations

import math
import os
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
from webhook_receivers import Receiver

from cairn.sdk.client import Client
from cairn.sdk.deployments import Deployments
from cairn.sdk.run import start_run

from monitor_helpers import closed_windows, monitor_health, wait_for
from platform_harness import Platform, read_all_events

# `cairn serve` as a subprocess comes from the serving tests' helper (its folder is on the path
# only while pytest collects that folder)
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "serving"))
from serving_proc import serving  # noqa: E402

from cairn.monitor import profile_table  # noqa: E402

PROJECT = f"mone2e{os.getpid()}"
DEPLOYMENT = "scorer"
WINDOW_S = 2.0
SHIFT = 3.0  # three standard deviations on x1: a mean shift KS cannot miss
SIGNATURE = [{"name": "x1", "type": "double"}, {"name": "x2", "type": "double"}]
MODEL = "def predict(batch):\n    return [int(v) for v in (batch['x1'] + batch['x2'] > 0)]\n"


@pytest.fixture(scope="module")
def admin(platform: Platform) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=f"{platform.gateway}/api/v1", headers=platform.headers, timeout=30) as client:
        yield client


def training_table() -> pd.DataFrame:
    """200 rows (a reference of at most 1000 values: KS decides, its p-value is the score)."""
    rng = np.random.default_rng(20)
    return pd.DataFrame({"x1": rng.normal(0.0, 1.0, 200), "x2": rng.normal(0.0, 1.0, 200)})


class Traffic:
    """A client of the replica posting the whole training table (x1 shifted once ``shift`` is
    called) every 0.1 s. Every request is the reference's own rows, so an unshifted window's
    distribution equals the reference's whatever requests the window boundaries cut out."""

    def __init__(self, http: httpx.Client, table: pd.DataFrame) -> None:
        self.http = http
        self.table = table
        self.shift_began: float | None = None
        self.answers: list[int | str] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self.stop.is_set():
            frame = self.table.assign(x1=self.table["x1"] + SHIFT) if self.shift_began is not None else self.table
            body = {"dataframe_split": {"columns": list(frame.columns), "data": frame.to_numpy().tolist()}}
            try:
                self.answers.append(self.http.post("/invocations", json=body).status_code)
            except httpx.HTTPError as err:  # kept for the assertion on the answers, not lost with the thread
                self.answers.append(repr(err))
            self.stop.wait(0.1)

    def shift(self) -> float:
        """Shift x1 from now on; the replica stamps each sample with its arrival time, which is
        after this moment for every shifted request."""
        self.shift_began = time.time()
        return self.shift_began


def drift_rows(admin: httpx.Client) -> list[dict[str, Any]]:
    resp = admin.get(f"/monitor/projects/{PROJECT}/deployments/{DEPLOYMENT}/drift",
                     params={"size": "2s", "since": "1h"})
    assert resp.status_code == 200, resp.text
    return [w for w in resp.json()["windows"] if w.get("drift")]


def decided(platform: Platform) -> bool:
    """Every closed window queued so far has had its rules decided."""
    return monitor_health(platform)["pending_decisions"] == 0


def fired(receiver: Receiver) -> list[dict[str, Any]]:
    return [event for event, _, _ in receiver.received if event["type"] == "alert.fired"]


def test_shifted_traffic_to_a_served_model_fires_a_drift_alert_at_a_webhook_within_two_windows(
        platform: Platform, admin: httpx.Client, tmp_path: Path) -> None:
    client = Client(platform.gateway, platform.token)
    train = training_table()
    module = tmp_path / "model" / "predict.py"
    module.parent.mkdir()
    module.write_text(MODEL)
    with start_run(PROJECT, client=client, system_metrics=False, record_environment=False) as run:
        assert run.log_model(module, "scorer", signature=SIGNATURE)["version"] == 1
        run_id = run.id
    Deployments(client).create(PROJECT, DEPLOYMENT, environment="dev", model="scorer", version=1, replicas=0,
                               sample_rate=1.0)
    reference = profile_table(train)
    digest = client.register_profile(PROJECT, reference, {"run": run_id})
    assert client.set_reference(PROJECT, DEPLOYMENT, digest)["chosen"] == "set"
    rule = client.add_alert_rule(PROJECT, DEPLOYMENT, name="drifting", metric="drift_share", comparison=">=",
                                 threshold=0.5, window="2s", persistence=(1, 1), cooldown_s=0)
    receiver = Receiver()
    try:
        admin.post(f"/projects/{PROJECT}/webhooks",
                   json={"url": receiver.url, "types": ["alert.*"]}).raise_for_status()
        with serving(platform, tmp_path / "cache", "--deployment", f"{PROJECT}/{DEPLOYMENT}") as served, \
                served.client() as http:
            traffic = Traffic(http, train)
            began = time.time()
            traffic.thread.start()
            try:
                # unshifted: two windows that began after the traffic did close with drift rows
                calm = wait_for(lambda: len(rows := [w for w in drift_rows(admin) if w["start"] >= began]) >= 2
                                and rows, "two closed windows of unshifted traffic with drift", timeout=30)
                wait_for(lambda: decided(platform), "the rules decided on those windows")
                for window in calm:
                    drift = window["drift"]
                    assert drift["reference"] == digest and set(drift["columns"]) == {"x1", "x2"}
                    assert drift["share"] < 0.5 and drift["drifted_columns"] == 0, drift
                assert not [e for e in read_all_events(platform.nats_url)
                            if e["project"] == PROJECT and e["type"] == "alert.fired"]
                assert not fired(receiver)

                # shifted: the alert reaches the webhook, on at most the second window of shifted traffic
                shift_began = traffic.shift()
                first_shifted = math.floor(shift_began / WINDOW_S) * WINDOW_S
                wait_for(lambda: fired(receiver), "alert.fired at the webhook", timeout=30)
            finally:
                traffic.stop.set()
                traffic.thread.join(timeout=30)
        assert traffic.answers and set(traffic.answers) == {200}
        (event,) = fired(receiver)
        data = event["data"]
        assert event["aggregate_id"] == rule["id"] and data["rule_id"] == rule["id"]
        assert (data["metric"], data["comparison"], data["threshold"], data["value"]) == ("drift_share", ">=", 0.5,
                                                                                            0.5)
        start = data["window"]["start"]
        assert data["window"] == {"size": "2s", "start": start, "end": start + WINDOW_S}
        assert first_shifted <= start <= first_shifted + WINDOW_S, (shift_began, data["window"])
        assert data["persistence"] == {"k": 1, "n": 1, "breaches": 1}
        (window,) = [w for w in drift_rows(admin) if w["start"] == start]
        columns = window["drift"]["columns"]
        assert (window["drift"]["share"], columns["x1"]["drifted"], columns["x2"]["drifted"]) == (0.5, True, False)
        assert columns["x1"]["method"] == "ks" and columns["x1"]["score"] < 0.05 <= columns["x2"]["score"]
        assert [w for w in closed_windows(admin, PROJECT, DEPLOYMENT) if w["start"] == start][0]["requests"] > 0
    finally:
        receiver.close()
