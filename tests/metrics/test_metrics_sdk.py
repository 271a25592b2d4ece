"""The SDK's metric logging: background batches, flush on exit, read back through the client."""

from __future__ import annotations

import math
import time

import cairn

from platform_harness import Platform


def test_log_metric_batches_in_background_and_flushes_on_exit(platform: Platform) -> None:
    with cairn.Client(platform.gateway, token=platform.token) as client:
        with cairn.start_run(project="sdkm", client=client) as run:
            for step in range(12_000):
                run.log_metrics({"loss": 1.0 / (step + 1), "acc": step / 12_000}, step=step)
            run.log_metric("odd", math.nan)
            run.log_metric("odd", math.inf)
            run.log_metric("odd", 1.5)  # auto steps 0, 1, 2
            assert run.flush()
            assert client.metric_history("sdkm", run.id, "loss")["total"] == 12_000
            run.log_metric("late", 3.0)  # sent by the with block's exit
        history = client.metric_history("sdkm", run.id, "odd")
        assert history["steps"] == [0, 1, 2]
        assert math.isnan(history["values"][0]) and history["values"][1:] == [math.inf, 1.5]
        summary = client.metric_summary("sdkm", run.id)
        assert summary["late"]["count"] == 1 and summary["acc"]["count"] == 12_000
        small = client.metric_history("sdkm", run.id, "loss", points=100)
        assert len(small["steps"]) <= 100 and small["values"][0] == 1.0
        assert run.metrics.dropped == 0 and run.refresh()["status"] == "finished"


def test_batches_survive_a_gateway_restart(platform: Platform) -> None:
    with cairn.Client(platform.gateway, token=platform.token) as client, \
            cairn.start_run(project="sdkm", client=client) as run:
        run.log_metric("x", 0.0, step=0)
        assert run.flush()
        platform.kill("gateway")
        for step in range(1, 3000):
            run.log_metric("x", float(step), step=step)  # never blocks while the gateway is down
        platform.start_service("gateway")
        platform.wait_healthy()
        assert run.flush(30)
        history = client.metric_history("sdkm", run.id, "x")
        assert history["total"] == 3000 and history["steps"] == list(range(3000))


def test_system_metrics_are_sampled_and_can_be_switched_off(platform: Platform) -> None:
    with cairn.Client(platform.gateway, token=platform.token) as client:
        with cairn.start_run(project="sdkm", client=client, system_metrics_interval_s=0.1) as run:
            time.sleep(0.35)
        summary = client.metric_summary("sdkm", run.id)
        assert summary["system/cpu_percent"]["count"] >= 2
        assert "system/memory_used_bytes" in summary and "system/net_recv_bytes_per_s" in summary
        with cairn.start_run(project="sdkm", client=client, system_metrics=False) as quiet:
            quiet.log_metric("only", 1.0)
        assert list(client.metric_summary("sdkm", quiet.id)) == ["only"]
