"""benchmarks/bench_monitor.py keeps working: every mode runs end to end on tiny sizes (speed is
never asserted; the figures are in benchmarks/README.md)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_monitor.py"


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True,
                          timeout=120, env={**os.environ, "CAIRN_THREADS": "2"})


def test_versus_evidently_agrees_on_every_column_of_a_tiny_table() -> None:
    done = _run("--versus-evidently", "--rows", "2000", "--cols", "5", "--repeat", "1")
    assert done.returncode == 0, done.stderr
    assert "decisions agree: 5/5" in done.stdout
    lines = dict(line.split(None, 1) for line in done.stdout.splitlines() if " " in line)
    assert lines["cairn_drifted"].strip() == "['c1', 'c2']"
    assert lines["evidently_drifted"].strip() == "['c1', 'c2']"


def test_big_mode_reports_time_memory_and_the_generated_drift() -> None:
    done = _run("--big", "--rows", "2000", "--cols", "5", "--json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["drifted_as_generated"] is True and result["drifted_columns"] == 2
    assert result["table_bytes"] == 2000 * 5 * 4  # float32, no validity bitmaps
    assert result["rss_peak_in_step_bytes"] >= result["rss_before_step_bytes"] > 0
    assert result["profile_plus_drift_s"] > 0


def test_bad_sizes_are_refused_with_a_message() -> None:
    done = _run("--big", "--rows", "0")
    assert done.returncode == 2
    assert "--rows must be at least 1" in done.stderr


def test_ingest_mode_counts_every_sample_and_closes_windows_with_drift() -> None:
    done = _run("--ingest", "--samples", "2000", "--batch-samples", "100", "--event-rate", "200", "--json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["samples"] == 2000 and result["counted"] == 2000 and result["position"] == 20
    assert result["smallest_closed"] >= 1 and result["smallest_closed_with_drift"] == result["smallest_closed"]
    assert result["samples_per_cpu_s"] > 0 and result["samples_per_wall_s"] > 0
