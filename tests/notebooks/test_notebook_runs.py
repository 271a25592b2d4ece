"""A run started in a real Jupyter kernel records its notebook as its code: the ``.ipynb`` found
through the session hint (outputs stripped, or kept with secrets scrubbed), else the executed cells
from the kernel's history; two notebook runs diff cell by cell; a notebook run is reproduced by
executing its notebook on a real agent; ``run.display()`` updates one output in place."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from notebook_kernel import SECRET, Kernel

from cairn.cli.main import cli
from cairn.sdk.client import ApiError, Client
from cairn.sdk.code_snapshot import read_snapshot
from cairn.sdk.reproduce import REPRODUCES_TAG, report, reproduce
from cairn.sdk.reproducibility import diff_runs_with_code
from cairn.sdk.run import start_run

PROJECT = f"nb{os.getpid() % 100000}"
GITHUB_TOKEN = "ghp_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8"


def _code_cell(source: str, outputs: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"cell_type": "code", "execution_count": 1 if outputs else None, "metadata": {}, "outputs": outputs or [],
            "source": source}


def _notebook(lr: float, *, extra_markdown: bool = False) -> dict[str, Any]:
    """The notebook as its author saved it: outputs of the last session included (with secrets)."""
    printed = {"output_type": "stream", "name": "stdout",
               "text": [f"training with {SECRET}\n", f"github {GITHUB_TOKEN}\n"]}
    cells = [
        {"cell_type": "markdown", "metadata": {}, "source": "# Training"},
        _code_cell(f"import os\nimport cairn\nPROJECT = {PROJECT!r}\n"
                   "KEEP = os.environ.get('NB_KEEP_OUTPUTS') == '1'\nNAME = os.environ.get('NB_RUN_NAME', 'nb')"),
        _code_cell(f"lr = {lr}\nprint('training with', os.environ.get('NB_SERVICE_TOKEN', ''))", [printed]),
        _code_cell("with cairn.start_run(PROJECT, name=NAME, seed=3, notebook_outputs=KEEP) as run:\n"
                   "    run.log_metric('score', lr * 2, step=0)\n    run.flush()"),
    ]
    if extra_markdown:
        cells.insert(1, {"cell_type": "markdown", "metadata": {}, "source": "Now with a smaller rate."})
    return {"cells": cells, "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                        "language": "python"}}, "nbformat": 4, "nbformat_minor": 4}


def _run_all(kernel: Kernel, nb: dict[str, Any], name: str, *, keep: bool = False) -> str:
    """Save the notebook where the kernel's session hint points, then run its cells as "Run all" does."""
    (kernel.folder / "train.ipynb").write_text(json.dumps(nb))
    flag = "1" if keep else "0"
    kernel.run(f"import os\nos.environ['NB_RUN_NAME'] = {name!r}\nos.environ['NB_KEEP_OUTPUTS'] = {flag!r}")
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            kernel.run(cell["source"])
    return kernel.stdout("print(run.id)").strip()


def _archive(client: Client, run_id: str, tmp_path: Path) -> tuple[dict[str, Any], dict[str, bytes]]:
    code = client.get_run_environment(PROJECT, run_id)["code"]
    path = client.artifacts.download_blob(code["archive_digest"], tmp_path / f"{run_id}.tar.gz")
    return code, read_snapshot(path)


@pytest.fixture(scope="module")
def first_runs(kernel: Kernel) -> dict[str, str]:
    """The same notebook run twice: outputs stripped (the default), then kept."""
    return {"stripped": _run_all(kernel, _notebook(0.5), "stripped"),
            "kept": _run_all(kernel, _notebook(0.5), "kept", keep=True)}


def test_the_ipynb_found_through_the_session_hint_is_the_code_with_outputs_stripped(
        client: Client, first_runs: dict[str, str], tmp_path: Path) -> None:
    code, files = _archive(client, first_runs["stripped"], tmp_path)
    assert code["kind"] == "notebook"
    assert code["notebook"] == {"found_by": "session_hint", "name": "train.ipynb", "cells": 4, "outputs_kept": False}
    assert list(files) == ["train.ipynb"]
    stored = json.loads(files["train.ipynb"])
    assert [c["source"] for c in stored["cells"]] == [c["source"] for c in _notebook(0.5)["cells"]]
    assert all(c["outputs"] == [] and c["execution_count"] is None for c in stored["cells"] if c["cell_type"] == "code")
    assert SECRET.encode() not in files["train.ipynb"] and b"ghp_" not in files["train.ipynb"]


def test_kept_outputs_are_stored_with_secrets_scrubbed(client: Client, first_runs: dict[str, str],
                                                      tmp_path: Path) -> None:
    code, files = _archive(client, first_runs["kept"], tmp_path)
    assert code["notebook"]["outputs_kept"] is True
    stored = files["train.ipynb"].decode()
    assert "training with [REDACTED]" in stored and "github [REDACTED]" in stored
    assert SECRET not in stored and GITHUB_TOKEN not in stored


def test_two_notebook_runs_diff_cell_by_cell(platform: Any, client: Client, kernel: Kernel,
                                             first_runs: dict[str, str]) -> None:
    edited = _run_all(kernel, _notebook(0.25, extra_markdown=True), "edited")
    diff = diff_runs_with_code(client, first_runs["stripped"], edited)["code"]["unified_diff"]
    assert "@@ (no cell) -> cell 2 (markdown) @@\n" in diff and "+Now with a smaller rate.\n" in diff
    assert "@@ cell 3 -> cell 4 (code) @@\n" in diff and "-lr = 0.5\n" in diff and "+lr = 0.25\n" in diff
    assert "cell 4 -> cell 5" not in diff  # the unchanged start_run cell is not shown
    assert '"source"' not in diff and '"cells"' not in diff  # no JSON noise
    out = CliRunner(env={"CAIRN_TOKEN": platform.token}).invoke(
        cli, ["--url", platform.gateway, "runs", "diff", first_runs["stripped"], edited], catch_exceptions=False)
    assert out.exit_code == 0 and "cell 3 -> cell 4 (code)" in out.output and "+lr = 0.25" in out.output
    shown = CliRunner(env={"CAIRN_TOKEN": platform.token}).invoke(
        cli, ["--url", platform.gateway, "runs", "environment", "-p", PROJECT, edited], catch_exceptions=False)
    assert "train.ipynb (session_hint, 5 cells, outputs stripped)" in shown.output


def test_without_a_session_hint_the_executed_cells_come_from_the_kernel_history(
        client: Client, kernel: Kernel, tmp_path: Path) -> None:
    kernel.run("import os\n_hint = __session__\ndel __session__\nos.environ.pop('JPY_SESSION_NAME')")
    try:
        kernel.run("history_lr = 0.125")
        kernel.run("with cairn.start_run(PROJECT, name='from-history') as run:\n"
                   "    run.log_metric('score', history_lr, step=0)")
        run_id = kernel.stdout("print(run.id)").strip()
    finally:
        kernel.run("__session__ = _hint\nos.environ['JPY_SESSION_NAME'] = _hint")
    code, files = _archive(client, run_id, tmp_path)
    assert code["kind"] == "notebook" and code["notebook"]["found_by"] == "history"
    cells = [c["source"] for c in json.loads(files["notebook.ipynb"])["cells"]]
    assert code["notebook"]["cells"] == len(cells)
    assert cells.index("history_lr = 0.125") == len(cells) - 2  # in order, the start_run cell last
    assert cells[-1].startswith("with cairn.start_run(PROJECT, name='from-history')")
    assert "lr = 0.5\nprint('training with', os.environ.get('NB_SERVICE_TOKEN', ''))" in cells


def test_vs_code_names_its_notebook_in_a_global_of_its_own(client: Client, kernel: Kernel, tmp_path: Path) -> None:
    kernel.run("_hint = __session__\ndel __session__\nos.environ.pop('JPY_SESSION_NAME')\n"
               "__vsc_ipynb_file__ = _hint")
    try:
        kernel.run("with cairn.start_run(PROJECT, name='vscode') as run:\n    pass")
        run_id = kernel.stdout("print(run.id)").strip()
    finally:
        kernel.run("__session__ = _hint\nos.environ['JPY_SESSION_NAME'] = _hint\ndel __vsc_ipynb_file__")
    code, files = _archive(client, run_id, tmp_path)
    assert code["notebook"]["found_by"] == "session_hint" and list(files) == ["train.ipynb"]


def test_display_updates_one_output_in_place(kernel: Kernel) -> None:
    messages = kernel.run(
        "with cairn.start_run(PROJECT, name='live', record_environment=False) as run:\n"
        "    view = run.display(total=3, every_s=0)\n"
        "    for step in range(3):\n"
        "        run.log_metrics({'loss': 1.0 / (step + 1), 'acc': step / 2}, step=step)")
    shown = [m for m in messages if m["msg_type"] == "display_data"]
    assert len(shown) == 1
    display_id = shown[0]["content"]["transient"]["display_id"]
    updates = [m["content"] for m in messages if m["msg_type"] == "update_display_data"]
    assert len(updates) == 4 and all(u["transient"]["display_id"] == display_id for u in updates)
    last = updates[-1]["data"]
    assert "<progress" in last["text/html"] and "(finished)" in last["text/html"]
    assert "step 3/3 (100%)" in last["text/plain"] and "loss=0.333333" in last["text/plain"]


def test_display_outside_a_notebook_prints_text_lines(client: Client, capsys: pytest.CaptureFixture[str]) -> None:
    with start_run(PROJECT, name="terminal", client=client, record_environment=False, system_metrics=False) as run:
        run.display(total=2, every_s=0)
        run.log_metric("loss", 0.5)  # steps numbered as the metrics logger numbers them: 0, 1
        run.log_metric("loss", 0.25)
    lines = capsys.readouterr().out.splitlines()
    assert lines[-1] == "run terminal (finished) | step 2/2 (100%) | loss=0.25"
    assert "step 1/2 (50%) | loss=0.5" in lines[1]


def test_a_notebook_record_with_an_unknown_way_of_finding_it_is_refused_and_changes_nothing(
        client: Client) -> None:
    with start_run(PROJECT, name="refused", client=client, record_environment=False, system_metrics=False) as run:
        code = {"archive_digest": "0" * 64, "kind": "notebook",
                "notebook": {"found_by": "guessed", "name": "x.ipynb", "cells": 1}}
        with pytest.raises(ApiError) as err:
            client.record_run_environment(PROJECT, run.id, code=code)
        assert err.value.status == 422 and "found_by" in str(err.value)
        with pytest.raises(ApiError) as missing:
            client.get_run_environment(PROJECT, run.id)
        assert missing.value.status == 404


def test_a_notebook_run_is_reproduced_by_executing_its_notebook_on_an_agent(
        client: Client, agents: Any, first_runs: dict[str, str]) -> None:
    agents.start("nb")
    original = first_runs["stripped"]
    job = reproduce(client, PROJECT, original, queue="nb")
    assert client.get_job(PROJECT, job["id"])["spec"]["command"] == ["python", "-m", "cairn.sdk.notebook_run", "train.ipynb"]
    final = client.wait_job(PROJECT, job["id"], timeout=180)
    assert final["status"] == "succeeded", client.get_job(PROJECT, job["id"])
    assert client.get_run(PROJECT, job["run_id"])["tags"][REPRODUCES_TAG] == original
    result = report(client, original, job["run_id"])
    assert result["metrics_within_tolerance"] and result["diff"]["metrics"]["metrics"]["score"]["b"] == 1.0
    assert result["diff"]["code"]["same_archive"]
