"""``cairn metrics list|show|export`` and the metrics in ``cairn runs show``, against the real stack:
points logged through the metrics service (Arrow batches, as the SDK sends them), read back by the
real CLI (click's runner in this process, the HTTP through the gateway)."""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner, Result

from cairn.cli.main import cli
from cairn.cli.metrics import column_bands
from cairn.protocol import ARROW_STREAM, metric_batch_schema
from cairn.sdk.client import Client

from platform_harness import Platform

pytestmark = pytest.mark.shared_stack  # a project of its own (climetrics); stops nothing

PROJECT = "climetrics"
N = 100_000
SPIKE_STEP = 54_321
SPIKE = 100.0


def loss(step: int) -> float:
    """A slowly falling curve between 1 and 2, with one spike far above it."""
    return SPIKE if step == SPIKE_STEP else 1.0 + 1.0 / (1.0 + step / 1000.0)


def post_points(client: Client, run_id: str, key: str, steps: range, value, ts0: float) -> None:
    """Log ``key`` at ``steps`` in Arrow batches of 10,000, the way the SDK sends them."""
    schema = metric_batch_schema()
    path = f"/api/v1/metrics/projects/{PROJECT}/runs/{run_id}/metrics"
    for start in range(0, len(steps), 10_000):
        chunk = steps[start:start + 10_000]
        table = pa.table({"key": [key] * len(chunk), "value": [value(s) for s in chunk],
                          "step": list(chunk), "timestamp": [ts0 + s / 8 for s in chunk]}).cast(schema)
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, schema) as writer:
            writer.write_table(table)
        resp = client._http.post(path, params={"batch_id": f"{run_id}-{key}-{start}"},
                                 content=sink.getvalue().to_pybytes(), headers={"Content-Type": ARROW_STREAM})
        assert resp.status_code == 202, resp.text


@pytest.fixture(scope="module")
def logged(platform: Platform) -> dict[str, str]:
    """One run with 100k points of ``loss`` (one spike) and 50 of ``acc`` every 2 steps."""
    client = Client(platform.gateway, token=platform.token)
    client.create_project(PROJECT)
    run_id = client.create_run(PROJECT, name="curves", params={"lr": "0.01"})["id"]
    post_points(client, run_id, "loss", range(N), loss, 1_700_000_000.0)
    post_points(client, run_id, "acc", range(0, 100, 2), lambda s: s / 100, 1_700_000_000.0)
    return {"run_id": run_id, "url": platform.gateway, "token": platform.token}


def run_cli(logged: dict[str, str], *args: str) -> Result:
    runner = CliRunner(env={"CAIRN_TOKEN": logged["token"], "CAIRN_DEBUG": ""})
    return runner.invoke(cli, ["--url", logged["url"], *args])


def test_show_draws_the_spike_in_its_column_of_a_100k_point_series(logged: dict[str, str]) -> None:
    width = 60
    done = run_cli(logged, "metrics", "show", "-p", PROJECT, logged["run_id"], "loss", "--ascii",
                   "--width", str(width), "--height", "10")
    assert done.exit_code == 0, done.output
    lines = done.output.splitlines()
    assert lines[0].startswith("loss  last 1.0099") and "max 100 " in lines[0] and f"count {N}" in lines[0]
    assert "steps 0..99999" in lines[0]
    rows = [line.split("|", 1)[1] for line in lines[1:11]]
    spike_column = SPIKE_STEP * width // N
    assert rows[0].strip() == "#" and rows[0].index("#") == spike_column  # only the spike reaches the top
    assert lines[1].split("|")[0].strip() == "100" and lines[10].split("|")[0].strip() == "1.0099"
    assert all(row[spike_column] == "#" for row in rows)  # its band runs from the curve up to the spike


def test_show_in_braille_and_zoomed_by_steps(logged: dict[str, str]) -> None:
    done = run_cli(logged, "metrics", "show", "-p", PROJECT, logged["run_id"], "loss", "--from", "60000",
                   "--to", "60999", "--width", "20", "--height", "4")
    assert done.exit_code == 0, done.output
    header, *rows = done.output.splitlines()
    assert "count 1000" in header and "steps 60000..60999" in header and "max 100" not in header
    assert any(0x2800 < ord(ch) <= 0x28FF for row in rows[:4] for ch in row)


def test_show_json_gives_the_points_and_every_key_by_default(logged: dict[str, str]) -> None:
    done = run_cli(logged, "metrics", "show", "-p", PROJECT, logged["run_id"], "--points", "300", "--json")
    assert done.exit_code == 0, done.output
    body = json.loads(done.output)
    by_key = {m["key"]: m for m in body["metrics"]}
    assert sorted(by_key) == ["acc", "loss"]
    assert by_key["acc"]["method"] == "full" and by_key["acc"]["steps"] == list(range(0, 100, 2))
    assert by_key["loss"]["total"] == N and len(by_key["loss"]["steps"]) <= 300
    assert max(by_key["loss"]["values"]) == SPIKE  # minmax kept the spike


def test_unknown_key_is_one_line_naming_the_keys_and_exit_1(logged: dict[str, str]) -> None:
    done = run_cli(logged, "metrics", "show", "-p", PROJECT, logged["run_id"], "los")
    assert done.exit_code == 1
    assert done.output.strip() == f"error: run {logged['run_id']} has no metric 'los'; its keys: acc, loss"
    done = run_cli(logged, "metrics", "export", "-p", PROJECT, logged["run_id"], "nope", "-o", "-")
    assert done.exit_code == 1 and "its keys: acc, loss" in done.output


def test_list_gives_each_key_with_last_min_max_count(logged: dict[str, str]) -> None:
    done = run_cli(logged, "metrics", "list", "-p", PROJECT, logged["run_id"], "--json")
    assert done.exit_code == 0, done.output
    rows = {row["key"]: row for row in json.loads(done.output)}
    assert rows["loss"]["count"] == N and rows["loss"]["max"] == SPIKE and rows["loss"]["last_step"] == N - 1
    assert rows["acc"]["count"] == 50 and rows["acc"]["last"] == 0.98
    table = run_cli(logged, "metrics", "list", "-p", PROJECT, logged["run_id"])
    assert table.exit_code == 0 and "loss" in table.output and "100000" in table.output


def expected_points(key: str) -> list[tuple[int, float, float, str]]:
    if key == "loss":
        return [(s, loss(s), 1_700_000_000.0 + s / 8, "loss") for s in range(N)]
    return [(s, s / 100, 1_700_000_000.0 + s / 8, "acc") for s in range(0, 100, 2)]


def test_export_to_parquet_in_pages_reads_back_every_point(logged: dict[str, str], tmp_path: Path) -> None:
    target = tmp_path / "curves.parquet"
    done = run_cli(logged, "metrics", "export", "-p", PROJECT, logged["run_id"], "-o", str(target),
                   "--page-points", "7000")
    assert done.exit_code == 0, done.output
    table = pq.read_table(target)
    assert table.schema.names == ["step", "value", "timestamp", "key"]
    got = list(zip(*(table.column(c).to_pylist() for c in table.schema.names), strict=True))
    assert got == expected_points("acc") + expected_points("loss")
    assert [p.name for p in tmp_path.iterdir()] == ["curves.parquet"]  # no temp file left


def test_export_to_csv_on_stdout_and_by_format(logged: dict[str, str], tmp_path: Path) -> None:
    done = run_cli(logged, "metrics", "export", "-p", PROJECT, logged["run_id"], "loss", "-o", "-")
    assert done.exit_code == 0, done.output
    rows = list(csv.reader(io.StringIO(done.stdout)))
    assert rows[0] == ["step", "value", "timestamp", "key"]
    got = [(int(s), float(v), float(t), k) for s, v, t, k in rows[1:]]
    assert got == expected_points("loss")
    target = tmp_path / "acc.out"
    done = run_cli(logged, "metrics", "export", "-p", PROJECT, logged["run_id"], "acc", "-o", str(target),
                   "--format", "csv")
    assert done.exit_code == 0, done.output
    assert len(target.read_text().splitlines()) == 51


def test_export_refuses_what_it_cannot_write(logged: dict[str, str], tmp_path: Path) -> None:
    done = run_cli(logged, "metrics", "export", "-p", PROJECT, logged["run_id"], "-o", str(tmp_path / "x.xlsx"))
    assert done.exit_code == 1 and "name it .csv, .parquet or .pq" in done.output
    done = run_cli(logged, "metrics", "export", "-p", PROJECT, logged["run_id"], "-o", "-", "--format", "parquet")
    assert done.exit_code == 1 and "Parquet cannot go to stdout" in done.output
    assert list(tmp_path.iterdir()) == []


def test_runs_show_prints_the_metric_summaries(logged: dict[str, str]) -> None:
    done = run_cli(logged, "runs", "show", "-p", PROJECT, logged["run_id"], "--json")
    assert done.exit_code == 0, done.output
    body = json.loads(done.output)
    assert body["params"] == {"lr": "0.01"}
    summaries = {s["key"]: s for s in body["metrics"]}
    assert summaries["loss"]["count"] == N and summaries["loss"]["max"] == SPIKE
    text = run_cli(logged, "runs", "show", "-p", PROJECT, logged["run_id"])
    assert text.exit_code == 0, text.output
    assert "params: lr=0.01" in text.output and "metrics" in text.output
    loss_row = next(line for line in text.output.splitlines() if " loss " in line)
    assert "100" in loss_row and "99999" in loss_row


def test_column_bands_keep_each_columns_min_and_max_and_skip_nan() -> None:
    import numpy as np

    steps = np.arange(10)
    values = np.array([1.0, 2.0, math.nan, 4.0, 5.0, -3.0, math.nan, math.nan, math.nan, 10.0])
    low, high = column_bands(steps, values, 5)
    assert low[:3].tolist() == [1.0, 4.0, -3.0] and high[:3].tolist() == [2.0, 4.0, 5.0]
    assert math.isnan(low[3]) and math.isnan(high[3]) and low[4] == high[4] == 10.0


def test_export_fetches_pages_of_bounded_size(logged: dict[str, str]) -> None:
    from cairn.cli.metrics import export_pages
    from cairn.cli.output import Ctx

    ctx = Ctx(logged["url"], False, token=logged["token"])
    sizes = [page.num_rows for page in export_pages(ctx, PROJECT, logged["run_id"], "loss", 7000)]
    assert sum(sizes) == N and len(sizes) >= N // 14_000 and max(sizes) <= 14_000
