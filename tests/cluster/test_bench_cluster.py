"""benchmarks/bench_cluster.py's parts that need no stack: the configuration argument, the CPU
reading from /proc and the result table (the figures themselves are in benchmarks/README.md;
speed is never asserted)."""

from __future__ import annotations

import argparse
import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_cluster.py"


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    if str(SCRIPT.parent) not in sys.path:  # its helper modules sit next to it, as for a script
        sys.path.insert(0, str(SCRIPT.parent))
    spec = importlib.util.spec_from_file_location("bench_cluster", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up while being made
    spec.loader.exec_module(module)
    return module


def test_configurations_are_nats_nodes_by_service_replicas(bench: ModuleType) -> None:
    assert bench.parse_configs("1x1, 3x3,1x8") == [(1, 1), (3, 3), (1, 8)]
    for bad in ("2x1", "3x0", "3x9", "3", "x3", "ax1", ""):
        with pytest.raises(argparse.ArgumentTypeError):
            bench.parse_configs(bad)


def test_a_bad_configuration_stops_the_script_before_anything_starts(bench: ModuleType) -> None:
    done = subprocess.run([sys.executable, str(SCRIPT), "--configs", "2x2"], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 2 and "NODES 1 or 3" in done.stderr


def test_cpu_seconds_come_from_proc_and_a_gone_process_has_none(bench: ModuleType) -> None:
    spent = bench.cpu_seconds(os.getpid())
    assert spent is not None and spent > 0
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    assert bench.cpu_seconds(child.pid) is None  # reaped: /proc has no entry for it


def test_the_table_has_a_row_per_configuration_with_the_busiest_processes(bench: ModuleType) -> None:
    def result(config: str, rate: float, first: str) -> dict:
        return {"config": config, "commands": {"commands_per_s": rate, "p50_ms": 50.0, "p99_ms": 90.0},
                "search": {"p50_ms": 5.0, "p99_ms": 20.0}, "loadavg_before": "1.0 1.0 1.0",
                "loadavg_after": "2.0 1.5 1.0", "cores_busy": 1.5,
                "cpu_ms_per_command": {"load generator": 4.0, first: 2.0, "gateway": 1.25, "nats": 1.0, "lineage": 0.55}}

    results = [result("1x1", 500.0, "registry"), {**result("3x3", 250.0, "nats-n1"), "tokens": 8,
                                                    "metrics": {"points_per_s": 90000, "p50_ms": 40.0}}]
    assert bench.bottleneck(results[1]) == ("nats-n1", 500)  # the load generator is not the platform
    lines = bench.table(results).splitlines()
    assert len(lines) == 4 and lines[0].startswith("| config | commands/s")
    assert lines[2].startswith("| 1x1 | 500.0 | 50.0 / 90.0 | 5.0 / 20.0 | - | 8.8 in all; load generator 4.0, "
                               "registry 2.0, gateway 1.25 | registry: 500/s | 1.5 |")
    assert lines[3].startswith("| 3x3, 8 tokens | 250.0 | 50.0 / 90.0 | 5.0 / 20.0 | 90000 (40.0) |")
    assert "nats-n1: 500/s" in lines[3] and "lineage" not in lines[3]
    assert bench.percentile([3.0, 1.0, 2.0], 0.5) == 2.0 and bench.percentile([], 0.5) != bench.percentile([], 0.5)
