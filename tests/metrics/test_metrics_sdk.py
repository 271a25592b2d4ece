"""The SDK's metric logging: background batches, flush on exit, read back through the client
(as NumPy arrays, or lists on request)."""

from __future__ import annotations

import math
import time

import numpy as np
import psutil
import pytest

import cairn
from cairn.sdk.metrics import MetricHistory, MetricsLogger

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
        assert history["steps"].tolist() == [0, 1, 2]
        assert math.isnan(history["values"][0]) and history["values"][1:].tolist() == [math.inf, 1.5]
        summary = client.metric_summary("sdkm", run.id)
        assert summary["late"]["count"] == 1 and summary["acc"]["count"] == 12_000
        small = client.metric_history("sdkm", run.id, "loss", points=100)
        assert len(small["steps"]) <= 100 and small["values"][0] == 1.0
        zoom = client.metric_history("sdkm", run.id, "loss", points=100, step_min=5_000, step_max=5_999)
        assert zoom["total"] == 1_000 and min(zoom["steps"]) >= 5_000 and max(zoom["steps"]) <= 5_999
        assert client.metric_table("sdkm", run.id, "acc", step_min=11_998).column("step").to_pylist() == [11_998, 11_999]
        assert run.metrics.dropped == 0 and run.refresh()["status"] == "finished"


def _wait_samples(run: cairn.ActiveRun, count: int) -> None:
    """Until the run's system-metrics sampler has taken ``count`` samples (a sample count, not a
    sleep that hopes for one: a loaded machine may take longer than a few intervals)."""
    deadline = time.monotonic() + 30
    while run._system is None or run._system._step < count:
        assert time.monotonic() < deadline, f"fewer than {count} system-metrics samples in 30 s"
        time.sleep(0.02)


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
        assert history["total"] == 3000 and history["steps"].tolist() == list(range(3000))


def test_system_metrics_are_sampled_and_can_be_switched_off(platform: Platform) -> None:
    with cairn.Client(platform.gateway, token=platform.token) as client:
        with cairn.start_run(project="sdkm", client=client, system_metrics_interval_s=0.1) as run:
            _wait_samples(run, 2)
        summary = client.metric_summary("sdkm", run.id)
        assert summary["system/cpu_percent"]["count"] >= 2
        assert "system/memory_used_bytes" in summary and "system/net_recv_bytes_per_s" in summary
        with cairn.start_run(project="sdkm", client=client, system_metrics=False) as quiet:
            quiet.log_metric("only", 1.0)
        assert list(client.metric_summary("sdkm", quiet.id)) == ["only"]


def test_logged_points_are_readable_without_a_flush(platform: Platform) -> None:
    with cairn.Client(platform.gateway, token=platform.token) as client, \
            cairn.start_run(project="sdkm", client=client, system_metrics=False) as run:
        for step in range(10):
            run.log_metric("live", float(step), step=step)
        deadline = time.monotonic() + 10  # sent within interval_s (1 s), visible once accepted
        while client.metric_history("sdkm", run.id, "live")["total"] < 10:
            assert time.monotonic() < deadline, "points logged without flush never became readable"
            time.sleep(0.05)
        assert client.metric_history("sdkm", run.id, "live", as_lists=True)["steps"] == list(range(10))


def test_system_metrics_follow_the_environment(platform: Platform, monkeypatch: pytest.MonkeyPatch) -> None:
    with cairn.Client(platform.gateway, token=platform.token) as client:
        monkeypatch.setenv("CAIRN_SYSTEM_METRICS", "0")
        with cairn.start_run(project="sdkm", client=client) as quiet:
            quiet.log_metric("only", 1.0)
        assert list(client.metric_summary("sdkm", quiet.id)) == ["only"]
        monkeypatch.delenv("CAIRN_SYSTEM_METRICS")
        monkeypatch.setenv("CAIRN_SYSTEM_METRICS_INTERVAL_S", "0.1")
        with cairn.start_run(project="sdkm", client=client) as sampled:
            assert sampled._system is not None and sampled._system.interval_s == 0.1
            _wait_samples(sampled, 2)
        summary = client.metric_summary("sdkm", sampled.id)
    assert summary["system/cpu_percent"]["count"] >= 2
    if psutil.disk_io_counters() is not None:  # containers without block devices report none
        assert "system/disk_read_bytes_per_s" in summary and "system/disk_write_bytes_per_s" in summary


def _nvml_gpus() -> int:
    try:
        import pynvml

        pynvml.nvmlInit()
        return int(pynvml.nvmlDeviceGetCount())
    except Exception:  # noqa: BLE001 - no library, no driver or no device: no GPU metrics
        return 0


GPUS = _nvml_gpus()


@pytest.mark.gpu
@pytest.mark.skipif(GPUS == 0, reason="no GPU visible through NVML (nvidia-ml-py and a driver)")
def test_gpu_utilisation_memory_and_power_are_sampled_with_nvml(platform: Platform) -> None:
    with cairn.Client(platform.gateway, token=platform.token) as client:
        with cairn.start_run(project="sdkm", client=client, system_metrics_interval_s=0.1) as run:
            _wait_samples(run, 1)
        summary = client.metric_summary("sdkm", run.id)
    for index in range(GPUS):
        for name in ("utilization_percent", "memory_used_bytes", "power_watts"):
            assert summary[f"system/gpu{index}/{name}"]["count"] >= 1


@pytest.mark.skipif(GPUS > 0, reason="a GPU is visible through NVML")
def test_without_nvml_gpus_system_metrics_leave_gpu_keys_out(platform: Platform) -> None:
    with cairn.Client(platform.gateway, token=platform.token) as client:
        with cairn.start_run(project="sdkm", client=client, system_metrics_interval_s=0.1) as run:
            _wait_samples(run, 1)
        summary = client.metric_summary("sdkm", run.id)
    assert "system/cpu_percent" in summary and not [k for k in summary if k.startswith("system/gpu")]


def test_long_keys_in_full_batches_still_arrive(platform: Platform) -> None:
    key = "k" * 250  # the longest key: 10,000 of them are 2.5 MB of text before compression
    with cairn.Client(platform.gateway, token=platform.token) as client, \
            cairn.start_run(project="sdkm", client=client, system_metrics=False) as run:
        run.metrics.batch_size = 10_000
        for step in range(20_000):
            run.log_metric(key, float(step), step=step)
        assert run.flush(60), run.metrics.last_error
        assert run.metrics.last_error is None
        assert client.metric_history("sdkm", run.id, key, points=10)["total"] == 20_000


def test_numpy_scalars_are_numbers_and_strings_are_refused(platform: Platform) -> None:
    with cairn.Client(platform.gateway, token=platform.token) as client, \
            cairn.start_run(project="sdkm", client=client, system_metrics=False) as run:
        run.log_metrics({"f32": np.float32(0.5), "i64": np.int64(3)}, step=7)
        with pytest.raises(TypeError, match="'high' is not a number"):
            run.log_metrics({"ok": 1.0, "bad": "high"}, step=8)  # nothing of this call is queued
        assert run.flush()
        summary = client.metric_summary("sdkm", run.id)
    assert sorted(summary) == ["f32", "i64"]
    assert summary["f32"]["last"] == 0.5 and summary["i64"]["last"] == 3.0 and summary["i64"]["last_step"] == 7


def test_flush_returns_on_the_acknowledgement_without_waiting_out_the_linger(platform: Platform) -> None:
    """A sender that lingers ``interval_s / 10`` for more points (here 360 s) or sleeps out its
    interval (an hour) would miss flush's 30 s deadline: flush must send at once and return on the ack."""
    with cairn.Client(platform.gateway, token=platform.token) as client, \
            cairn.start_run(project="sdkm", client=client, system_metrics=False) as run:
        logger = MetricsLogger(client.url, client.token, "sdkm", run.id, interval_s=3600)
        try:
            for step in range(2_000):
                logger.log("end", float(step), step=step)
            assert logger.flush(30), logger.last_error
            assert logger.sent_points == 2_000
            logger.log("end", 2_000.0)  # a second flush, with one point pending, is as quick
            assert logger.flush(30) and logger.sent_points == 2_001
        finally:
            logger.close(30)
        assert client.metric_history("sdkm", run.id, "end")["total"] == 2_001


def test_history_is_numpy_arrays_equal_to_what_was_logged(platform: Platform) -> None:
    steps = np.arange(0, 30_000, 3)
    values = np.sin(steps / 100.0)
    with cairn.Client(platform.gateway, token=platform.token) as client, \
            cairn.start_run(project="sdkm", client=client, system_metrics=False) as run:
        for step, value in zip(steps.tolist(), values.tolist()):
            run.log_metric("wave", value, step=step, timestamp=1_700_000_000.0 + step)
        assert run.flush()
        history = client.metric_history("sdkm", run.id, "wave")
        lists = client.metric_history("sdkm", run.id, "wave", as_lists=True)
    assert isinstance(history, MetricHistory) and history.total == len(steps) and history.method == "full"
    assert history.steps.dtype == np.int64 and history.values.dtype == np.float64
    np.testing.assert_array_equal(history.steps, steps)
    np.testing.assert_array_equal(history.values, values)
    np.testing.assert_array_equal(history.timestamps, 1_700_000_000.0 + steps)
    assert history["values"] is history.values and sorted(history) == sorted(lists)
    assert type(lists) is dict and type(lists["steps"]) is list and lists["steps"] == steps.tolist()
    assert lists == history.to_dict() and lists["values"] == values.tolist()
