"""``cairn monitor drift`` and ``cairn monitor profile --no-register`` on files alone: no platform,
the ad hoc report is computed on this machine (docs/monitor.md, "Command line and SDK")."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pv
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner, Result

from cairn.cli.main import cli
from cairn.monitor import Profile, profile_table

ROWS = 4000


def _table(rng: np.random.Generator, shift: float) -> pa.Table:
    return pa.table({"age": rng.normal(40.0, 10.0, ROWS),
                     "amount": rng.normal(100.0 + shift, 15.0, ROWS),
                     "country": pa.array(rng.choice(["de", "fr", "it"], ROWS))})


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A reference and two current files (one with ``amount`` shifted by 2 std, one not)."""
    root = tmp_path_factory.mktemp("drift")
    rng = np.random.default_rng(2020)
    out = {"reference": root / "reference.parquet", "shifted": root / "shifted.parquet",
           "same": root / "same.parquet"}
    pq.write_table(_table(rng, 0.0), out["reference"], row_group_size=1000)
    pq.write_table(_table(rng, 30.0), out["shifted"], row_group_size=1000)
    pq.write_table(_table(rng, 0.0), out["same"])
    return out


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def run_json(*args: str) -> dict:
    result = run("--json", *args)
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def _drifted(report: dict) -> dict[str, bool]:
    return {c["column"]: c["drifted"] for c in report["columns"]}


def test_shifted_column_drifts_and_the_others_do_not(files: dict[str, Path]) -> None:
    report = run_json("monitor", "drift", "--reference", str(files["reference"]), "--current", str(files["shifted"]))
    assert _drifted(report) == {"age": False, "amount": True, "country": False}
    assert report["drifted_columns"] == 1 and report["drifted"] is False  # 1 of 3 < drift_share 0.5
    assert report["summary"].startswith("1 of 3 columns drifted")
    assert report["reference"] == {"file": str(files["reference"])}


def test_exit_code_is_zero_with_or_without_drift_and_the_summary_counts(files: dict[str, Path]) -> None:
    shifted = run("monitor", "drift", "-r", str(files["reference"]), "-c", str(files["shifted"]))
    same = run("monitor", "drift", "-r", str(files["reference"]), "-c", str(files["same"]))
    assert shifted.exit_code == 0 and same.exit_code == 0, shifted.output + same.output
    assert shifted.output.strip().splitlines()[-1].startswith("1 of 3 columns drifted")
    assert same.output.strip().splitlines()[-1].startswith("0 of 3 columns drifted")
    assert "DRIFT" in shifted.output and "DRIFT" not in same.output


def test_drift_share_decides_the_dataset_verdict(files: dict[str, Path]) -> None:
    report = run_json("monitor", "drift", "-r", str(files["reference"]), "-c", str(files["shifted"]),
                      "--drift-share", "0.3")
    assert report["drifted"] is True and report["drift_share"] == 0.3


class _Rows(HTMLParser):
    """The report's table rows: data-drifted attribute and the first cell's text."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[tuple[str | None, str]] = []
        self._in_row: str | None = None
        self._cell = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "tr":
            self._in_row = dict(attrs).get("data-drifted") or "none"
            self.rows.append((dict(attrs).get("data-drifted"), ""))
        elif tag == "td" and self._in_row is not None and self.rows[-1][1] == "":
            self._cell = True

    def handle_endtag(self, tag: str) -> None:
        if tag == "td":
            self._cell = False
        elif tag == "tr":
            self._in_row = None

    def handle_data(self, data: str) -> None:
        if self._cell and data.strip():
            self.rows[-1] = (self.rows[-1][0], data.strip())
            self._cell = False


def test_html_report_is_written_and_marks_the_drifted_column(files: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "drift.html"
    report = run_json("monitor", "drift", "-r", str(files["reference"]), "-c", str(files["shifted"]),
                      "--html", str(out))
    assert report["html"] == str(out)
    page = out.read_text()
    parser = _Rows()
    parser.feed(page)
    drifted = {name for flag, name in parser.rows if flag == "true"}
    assert drifted == {"amount"}, parser.rows
    assert "<script" not in page.lower() and page.count("<svg") >= 3
    assert [p.name for p in tmp_path.iterdir()] == ["drift.html"]  # no temp file left beside it
    umask = os.umask(0)
    os.umask(umask)
    assert out.stat().st_mode & 0o777 == 0o666 & ~umask  # as a plain open() makes it, not 0600


def test_reference_may_be_a_saved_profile_json(files: dict[str, Path], tmp_path: Path) -> None:
    saved = tmp_path / "reference.json"
    made = run_json("monitor", "profile", str(files["reference"]), "--no-register", "--output", str(saved))
    assert made["registered"] is False and made["rows"] == ROWS
    assert Profile.from_json(saved.read_bytes()) == profile_table(files["reference"])
    assert made["digest"] == Profile.from_json(saved.read_bytes()).digest()
    from_json = run_json("monitor", "drift", "-r", str(saved), "-c", str(files["shifted"]))
    from_file = run_json("monitor", "drift", "-r", str(files["reference"]), "-c", str(files["shifted"]))
    assert from_json["columns"] == from_file["columns"]


def test_current_may_be_csv(files: dict[str, Path], tmp_path: Path) -> None:
    csv = tmp_path / "shifted.csv"
    pv.write_csv(pq.read_table(files["shifted"]), csv)
    report = run_json("monitor", "drift", "-r", str(files["reference"]), "-c", str(csv))
    assert _drifted(report) == {"age": False, "amount": True, "country": False}


def test_missing_files_are_clear_errors(files: dict[str, Path], tmp_path: Path) -> None:
    gone = tmp_path / "gone.parquet"
    no_current = run("monitor", "drift", "-r", str(files["reference"]), "-c", str(gone))
    assert no_current.exit_code != 0 and f"{gone}: no such file" in no_current.output
    no_reference = run("monitor", "drift", "-r", str(gone), "-c", str(files["shifted"]))
    assert no_reference.exit_code != 0 and f"{gone}: no such file" in no_reference.output
    assert not gone.exists()


def test_a_column_missing_from_current_is_named(files: dict[str, Path], tmp_path: Path) -> None:
    partial = tmp_path / "partial.parquet"
    pq.write_table(pq.read_table(files["shifted"]).drop_columns(["country"]), partial)
    html = tmp_path / "never.html"
    result = run("monitor", "drift", "-r", str(files["reference"]), "-c", str(partial), "--html", str(html))
    assert result.exit_code == 1
    assert "columns ['country'] of the reference are not in" in result.output
    assert not html.exists()  # nothing written on bad input


def test_bad_reference_text_and_a_bad_profile_json_say_what_to_give(files: dict[str, Path], tmp_path: Path) -> None:
    result = run("monitor", "drift", "-r", "fraud@v3", "-c", str(files["shifted"]))
    assert result.exit_code == 1 and "dataset:NAME@vN" in result.output
    broken = tmp_path / "broken.json"
    broken.write_text('{"version": 1, "rows": -1, "columns": {}}')
    result = run("monitor", "drift", "-r", str(broken), "-c", str(files["shifted"]))
    assert result.exit_code == 1 and "rows must be a non-negative integer" in result.output


def test_dataset_and_digest_references_need_a_project(files: dict[str, Path]) -> None:
    result = CliRunner(env={"CAIRN_PROJECT": None}).invoke(
        cli, ["monitor", "drift", "-r", "dataset:fraud@v3", "-c", str(files["shifted"])])
    assert result.exit_code == 2 and "-p PROJECT" in result.output


def test_every_monitor_command_has_help_with_an_example() -> None:
    commands = [["monitor"], ["monitor", "profile"], ["monitor", "drift"], ["monitor", "status"],
                ["monitor", "reference"], ["monitor", "reference", "set"], ["monitor", "reference", "show"],
                ["monitor", "rules"], ["monitor", "rules", "add"], ["monitor", "rules", "list"],
                ["monitor", "rules", "delete"], ["monitor", "alerts"]]
    for command in commands:
        result = run(*command, "--help")
        assert result.exit_code == 0 and "Example" in result.output, command


def test_the_cli_does_not_import_the_statistics_library_for_other_commands() -> None:
    code = ("import sys; import cairn.cli.main; "
            "print(sorted(m for m in sys.modules if m.startswith('cairn.monitor') or m == 'scipy'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == "[]"


def test_a_column_of_another_kind_in_current_is_named(files: dict[str, Path], tmp_path: Path) -> None:
    retyped = tmp_path / "retyped.parquet"
    table = pq.read_table(files["shifted"])
    pq.write_table(table.set_column(0, "age", table["age"].cast(pa.string())), retyped)
    result = run("monitor", "drift", "-r", str(files["reference"]), "-c", str(retyped))
    assert result.exit_code == 1
    assert "column 'age' is numeric in the reference and categorical in the current" in result.output
