"""``Client.profile_dataset`` on a real platform: a dataset version pushed through the SDK is
downloaded (verified), its Parquet and CSV files profiled as one table; and the CLI's
``dataset:NAME@vN`` references (docs/monitor.md, "Command line and SDK")."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pv
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from cairn.cli.main import cli
from cairn.monitor import NumericProfile, Profile, profile_table
from cairn.sdk.client import ApiError, Client

from platform_harness import Platform

pytestmark = pytest.mark.shared_stack  # see tests/conftest.py

PROJECT = "sdk-monitor"


@pytest.fixture(scope="module")
def client(platform: Platform) -> Client:
    with Client(platform.gateway, token=platform.token) as c:
        c.ensure_project(PROJECT)
        yield c


def _part(rng: np.random.Generator, rows: int, centre: float) -> pa.Table:
    amount = rng.lognormal(3.0 + centre, 1.0, rows)
    amount[::97] = np.nan  # missing values count too
    return pa.table({"amount": amount, "items": rng.integers(1, 20, rows),
                     "channel": pa.array(rng.choice(["web", "app", "shop"], rows))})


@pytest.fixture(scope="module")
def fraud(client: Client, tmp_path_factory: pytest.TempPathFactory) -> tuple[list[pa.Table], dict]:
    """Version 1 of 'fraud': two Parquet files (several row groups), one CSV, and a README."""
    root = tmp_path_factory.mktemp("fraud")
    rng = np.random.default_rng(20)
    parts = [_part(rng, 3000, 0.0), _part(rng, 2000, 0.5), _part(rng, 1000, 1.0)]
    (root / "train").mkdir()
    pq.write_table(parts[0], root / "train" / "a.parquet", row_group_size=700)
    pq.write_table(parts[1], root / "train" / "b.parquet", row_group_size=500)
    pv.write_csv(parts[2], root / "train" / "c.csv")
    (root / "README.md").write_text("transactions, labelled by hand\n")
    record = client.artifacts.push_dataset(PROJECT, "fraud", root).record
    return parts, record


def _assert_same(got: Profile, want: Profile) -> None:
    assert got.rows == want.rows and got.roles == want.roles and list(got.columns) == list(want.columns)
    for name, column in want.columns.items():
        mine, theirs = got.columns[name].to_dict(), column.to_dict()
        if isinstance(column, NumericProfile):  # Chan's merge vs one pass: float rounding only
            for key in ("mean", "m2"):
                assert math.isclose(mine.pop(key), theirs.pop(key), rel_tol=1e-12), (name, key)
        assert mine == theirs, name  # counts, sketch, edges and histogram exactly


def test_profile_dataset_equals_profile_table_on_the_same_rows(client: Client, fraud: tuple) -> None:
    parts, record = fraud
    got = client.profile_dataset(PROJECT, "fraud", record["version"])
    # the files in path order (a.parquet, b.parquet, c.csv) as one table, CSV types as read back
    csv_part = pv.read_csv(pa.BufferReader(_csv_bytes(parts[2])))
    want = profile_table(pa.concat_tables([parts[0], parts[1], csv_part.cast(parts[0].schema)]))
    _assert_same(got, want)
    assert got.rows == 6000 and got.columns["amount"].missing == sum(len(range(0, len(p), 97)) for p in parts)


def _csv_bytes(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    pv.write_csv(table, sink)
    return sink.getvalue().to_pybytes()


def test_latest_version_and_bins(client: Client, fraud: tuple) -> None:
    parts, record = fraud
    latest = client.profile_dataset(PROJECT, "fraud", bins=4)
    pinned = client.profile_dataset(PROJECT, "fraud", f"v{record['version']}", bins=4)
    assert latest == pinned
    assert all(len(c.edges) <= 3 for c in latest.columns.values() if isinstance(c, NumericProfile))


def test_a_version_without_data_files_and_an_unknown_version_are_errors(client: Client, tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("no tables here")
    client.artifacts.push_dataset(PROJECT, "notes", tmp_path)
    with pytest.raises(ValueError, match=r"dataset notes@v1 has no \.parquet or \.csv files .*notes\.txt"):
        client.profile_dataset(PROJECT, "notes", 1)
    with pytest.raises(ApiError) as err:
        client.profile_dataset(PROJECT, "notes", 9)
    assert err.value.status == 404


def test_cli_profiles_a_dataset_version_and_uses_it_as_a_drift_reference(
        platform: Platform, client: Client, fraud: tuple, tmp_path: Path) -> None:
    parts, record = fraud
    runner = CliRunner(env={"CAIRN_TOKEN": platform.token})
    saved = tmp_path / "fraud.json"
    result = runner.invoke(cli, ["--url", platform.gateway, "--json", "monitor", "profile", "dataset:fraud@v1",
                                 "-p", PROJECT, "--no-register", "--output", str(saved)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    answer = json.loads(result.output)
    assert answer["source"] == {"dataset": "fraud", "version": record["version"]} and answer["registered"] is False
    assert Profile.from_json(saved.read_bytes()) == client.profile_dataset(PROJECT, "fraud", 1)

    current = tmp_path / "today.parquet"
    shifted = parts[0].set_column(0, "amount", pa.array(np.asarray(parts[0]["amount"]) * 5.0))
    pq.write_table(shifted, current)
    result = runner.invoke(cli, ["--url", platform.gateway, "--json", "monitor", "drift", "-p", PROJECT,
                                 "--reference", "dataset:fraud@v1", "--current", str(current)],
                           catch_exceptions=False)
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["reference"] == {"dataset": "fraud", "version": 1}
    assert {c["column"]: c["drifted"] for c in report["columns"]}["amount"] is True

    missing = runner.invoke(cli, ["--url", platform.gateway, "monitor", "drift", "-p", PROJECT,
                                  "--reference", "dataset:fraud@v7", "--current", str(current)])
    assert missing.exit_code == 1 and "(404" in missing.output
