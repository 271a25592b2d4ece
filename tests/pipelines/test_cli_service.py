"""``cairn pipelines run|list|show RUN_ID|logs|cancel|approve|reject`` on a real platform (the
pipelines service behind the gateway), through click's CliRunner; and the parsing of ``--param``
and of ``show``'s argument, which need no platform.

An approval-only pipeline needs no agent: its run exists at once with its one step."""

from __future__ import annotations

import json
import re
import subprocess
import tarfile
import time
from pathlib import Path

import click
import pytest
from click.testing import CliRunner, Result

from cairn.cli.main import cli
from cairn.cli.pipeline_runs import parse_params, parse_value
from cairn.cli.pipelines import is_run_id
from cairn.sdk.client import Client

RELEASE = """\
name: release
params: {lr: 0.01, epochs: 3, tag: "stable"}
steps:
  - id: sign-off
    approval: {role: editor, message: "ship it?"}
"""

pytestmark = pytest.mark.shared_stack


# --- no platform -----------------------------------------------------------------------------------

def test_param_values_read_numbers_bools_and_null_like_json_and_anything_else_as_text() -> None:
    assert [parse_value(v) for v in ("5", "0.02", "1e-3", "-2", "true", "False", "null", "[1, 2]")] == [
        5, 0.02, 0.001, -2, True, False, None, [1, 2]]
    assert [parse_value(v) for v in ("adam", "", "1.2.3", "v2", "a=b")] == ["adam", "", "1.2.3", "v2", "a=b"]


def test_params_split_at_the_first_equals_and_keep_a_declared_string_a_string() -> None:
    declared = {"lr": 0.01, "tag": "stable", "flags": "x"}
    assert parse_params(("lr=0.5", "tag=007", "flags=a=b"), declared) == {"lr": 0.5, "tag": "007", "flags": "a=b"}
    assert parse_params(("epochs=4", "name=x"), None) == {"epochs": 4, "name": "x"}


def test_a_param_the_pipeline_lacks_or_without_equals_is_an_error_saying_what_to_fix() -> None:
    with pytest.raises(click.BadParameter, match="no param 'lrr'; its params: lr, tag"):
        parse_params(("lrr=1",), {"lr": 0.01, "tag": "x"})
    with pytest.raises(click.BadParameter, match="key=value, got 'lr'"):
        parse_params(("lr",), {"lr": 0.01})


def test_show_reads_a_bare_word_that_is_no_file_as_a_run_id(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "pipe").write_text(RELEASE)
    assert is_run_id("0190ab12cd") and not is_run_id("pipe") and not is_run_id("cairn/pipeline.yaml")
    assert not is_run_id("missing.yaml")
    result = CliRunner().invoke(cli, ["pipelines", "show", "0190ab12cd"], env={"CAIRN_PROJECT": ""})
    assert result.exit_code == 2 and "give its project with -p PROJECT" in result.output


def test_every_pipelines_command_has_help_with_an_example() -> None:
    runner = CliRunner()
    commands = ["run", "list", "show", "logs", "cancel", "approve", "reject", "register", "definitions",
                "validate"]
    for args in (["pipelines"], *[["pipelines", c] for c in commands],
                 *[["pipelines", "definitions", c] for c in ("list", "show", "delete")]):
        result = runner.invoke(cli, [*args, "--help"])
        assert result.exit_code == 0 and "Example" in result.output, args


# --- on the platform (the session's shared one: see tests/conftest.py) ---------------------------------

def git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True)


@pytest.fixture()
def repo(tmp_path: Path) -> Path:
    """A git work tree holding the pipeline file and an uncommitted change."""
    root = tmp_path / "repo"
    (root / "cairn").mkdir(parents=True)
    git(root, "init", "-q")
    (root / "train.py").write_text("print('v1')\n")
    git(root, "add", "train.py")
    git(root, "-c", "user.email=t@example.com", "-c", "user.name=t", "commit", "-qm", "first")
    (root / "train.py").write_text("print('v2, not committed')\n")
    (root / "cairn" / "pipeline.yaml").write_text(RELEASE)
    return root


def cairn(platform, *args: str, token: str | None = None) -> Result:  # noqa: ANN001
    runner = CliRunner(env={"CAIRN_TOKEN": token or platform.token, "CAIRN_PROJECT": ""})
    return runner.invoke(cli, ["--url", platform.gateway, *args])


def ok(result: Result) -> str:
    assert result.exit_code == 0, result.output
    return result.output


def test_run_uploads_the_work_tree_then_list_show_logs_and_cancel(platform, project: str, repo: Path) -> None:
    pipeline_file = str(repo / "cairn" / "pipeline.yaml")
    started = json.loads(ok(cairn(platform, "pipelines", "run", pipeline_file, "-p", project,
                                  "--param", "lr=0.5", "--param", "tag=007", "--json")))
    assert started["pipeline"] == "release" and started["status"] == "running"
    assert started["params"] == {"lr": 0.5, "epochs": 3, "tag": "007"}
    assert started["trigger"]["kind"] == "manual"
    assert len(started["code"]["archive_digest"]) == 64 and len(started["code"]["commit"]) == 40
    assert [s["id"] for s in started["steps"]] == ["sign-off"]
    run_id = started["id"]

    listed = json.loads(ok(cairn(platform, "--json", "pipelines", "list", "-p", project)))
    assert [r["id"] for r in listed] == [run_id]
    assert json.loads(ok(cairn(platform, "pipelines", "list", "-p", project, "--status", "failed", "--json"))) == []
    assert run_id[:8] in ok(cairn(platform, "pipelines", "list", "-p", project, "--pipeline", "release"))

    mermaid = ok(cairn(platform, "pipelines", "show", run_id, "-p", project, "--format", "mermaid"))
    assert mermaid.startswith("flowchart TD") and "sign-off" in mermaid
    shown = json.loads(ok(cairn(platform, "--json", "pipelines", "show", run_id, "-p", project, "--format", "dot")))
    assert shown["id"] == run_id and shown["drawing"].startswith("digraph")
    text = ok(cairn(platform, "pipelines", "show", run_id, "-p", project))
    assert text.startswith(f"run {run_id}\npipeline release: 1 step in 1 level\n") and "sign-off" in text
    ascii_text = ok(cairn(platform, "pipelines", "show", run_id, "-p", project, "--ascii"))
    assert ascii_text.isascii() and "-- level 0 --" in ascii_text
    assert re.search(r"^  [.?] sign-off +approval +(pending|waiting_approval)$", ascii_text, re.M), ascii_text
    assert ok(cairn(platform, "pipelines", "logs", run_id, "-p", project)).strip() == ""
    assert json.loads(ok(cairn(platform, "pipelines", "logs", run_id, "-p", project, "--json"))) == {
        "run": run_id, "step": None, "logs": ""}
    no_logs = cairn(platform, "pipelines", "logs", run_id, "-p", project, "--step", "sign-off")
    assert no_logs.exit_code == 1 and "only job steps have logs" in no_logs.output

    ok(cairn(platform, "pipelines", "cancel", run_id, "-p", project, "--reason", "wrong data"))
    with Client(platform.gateway, platform.token) as client:
        archive = client.artifacts.download_blob(started["code"]["archive_digest"], repo.parent / "code.tar.gz")
    with tarfile.open(archive) as tar:  # the work tree as it is now, not as committed
        member = tar.extractfile(next(m for m in tar.getmembers() if m.name.endswith("train.py")))
        assert member is not None and member.read() == b"print('v2, not committed')\n"
    with Client(platform.gateway, platform.token) as client:
        assert client.wait_pipeline_run(project, run_id, timeout=60)["status"] == "cancelled"
        events = client.pipeline_run_events(project, run_id)
    assert [(e["type"], e["data"].get("reason")) for e in events if e["type"] == "pipeline_run.cancel_requested"] \
        == [("pipeline_run.cancel_requested", "wrong data")]


def test_run_of_an_invalid_file_prints_file_line_col_and_sends_nothing(platform, project: str,
                                                                       tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: release\nsteps:\n  - id: a\n    comand: python a.py\n")
    result = cairn(platform, "pipelines", "run", str(bad), "-p", project)
    assert result.exit_code == 1
    assert f"{bad}:4:5: step 'a': unknown key 'comand'; did you mean 'command'?" in result.output
    unknown = cairn(platform, "pipelines", "run", str(tmp_path / "none.yaml"), "-p", project)
    assert unknown.exit_code == 1 and "none.yaml:1:1: cannot read the file" in unknown.output
    (tmp_path / "ok.yaml").write_text(RELEASE)
    wrong = cairn(platform, "pipelines", "run", str(tmp_path / "ok.yaml"), "-p", project, "--no-code",
                  "--param", "lrr=1")
    assert wrong.exit_code == 2 and "no param 'lrr'; its params: epochs, lr, tag" in wrong.output
    assert json.loads(ok(cairn(platform, "--json", "pipelines", "list", "-p", project))) == []


def test_approving_a_step_that_is_not_waiting_is_refused_with_the_services_message(platform, project: str,
                                                                                   tmp_path: Path) -> None:
    (tmp_path / "release.yaml").write_text(RELEASE.replace("sign-off\n", "sign-off\n    needs: [build]\n")
                                           + "  - id: build\n    command: python build.py\n")
    started = json.loads(ok(cairn(platform, "--json", "pipelines", "run", str(tmp_path / "release.yaml"),
                                  "-p", project, "--no-code")))
    assert started["code"] is None and {s["id"]: s["state"] for s in started["steps"]}["sign-off"] == "pending"
    refused = cairn(platform, "pipelines", "approve", started["id"], "sign-off", "-p", project, "--comment", "ok")
    assert refused.exit_code == 1 and "Traceback" not in refused.output
    assert refused.output == "error: step 'sign-off' is pending, not waiting for approval (409 conflict)\n"
    unknown = cairn(platform, "pipelines", "reject", started["id"], "nostep", "-p", project)
    assert unknown.exit_code == 1 and unknown.output.startswith("error: ") and "nostep" in unknown.output


def test_an_api_refusal_is_one_line_with_the_service_message_and_no_traceback(platform, project: str) -> None:
    result = cairn(platform, "pipelines", "show", "0190nosuchrun", "-p", project)
    assert result.exit_code == 1 and result.output.startswith("error: ") and "404" in result.output
    assert "Traceback" not in result.output


def wait_for_state(client: Client, project: str, run_id: str, step: str, state: str) -> dict:
    deadline = time.monotonic() + 60
    while True:
        view = client.pipeline_run(project, run_id)
        if {s["id"]: s["state"] for s in view["steps"]}[step] == state:
            return view
        assert time.monotonic() < deadline, f"step {step} never reached {state}: {view}"
        time.sleep(0.2)


def test_a_viewer_cannot_approve_an_editor_can_and_the_run_succeeds(platform, project: str, tmp_path: Path) -> None:
    (tmp_path / "release.yaml").write_text(RELEASE)
    admin = Client(platform.gateway, platform.token)
    viewer_token = admin.create_token(f"{project}-vera")["token"]
    admin.add_member(project, f"{project}-vera", "viewer")
    first = json.loads(ok(cairn(platform, "--json", "pipelines", "run", str(tmp_path / "release.yaml"), "-p", project,
                                "--no-code")))["id"]
    wait_for_state(admin, project, first, "sign-off", "waiting_approval")
    assert "waiting_approval" in ok(cairn(platform, "pipelines", "show", first, "-p", project, "--format", "mermaid"))

    refused = cairn(platform, "pipelines", "approve", first, "sign-off", "-p", project, token=viewer_token)
    assert refused.exit_code == 1 and "Traceback" not in refused.output
    assert refused.output.startswith(f"error: step 'sign-off' needs a editor to decide; '{project}-vera:")
    assert refused.output.endswith("' is a viewer on this project (403 forbidden)\n")
    granted = json.loads(ok(cairn(platform, "pipelines", "approve", first, "sign-off", "-p", project,
                                  "--comment", "looks right", "--json")))
    assert granted["id"] == first
    assert admin.wait_pipeline_run(project, first, timeout=60)["status"] == "succeeded"
    # other params: a new cache key, so the approval is asked again (an unchanged re-run reuses it)
    second = json.loads(ok(cairn(platform, "--json", "pipelines", "run", str(tmp_path / "release.yaml"), "-p",
                                 project, "--no-code", "--param", "lr=0.2")))["id"]
    wait_for_state(admin, project, second, "sign-off", "waiting_approval")
    ok(cairn(platform, "pipelines", "reject", second, "sign-off", "-p", project, "--comment", "not today"))
    assert admin.wait_pipeline_run(project, second, timeout=60)["status"] == "failed"
    # unchanged: the approval granted for exactly this run's inputs is reused, so --wait returns at once
    again = cairn(platform, "--json", "pipelines", "run", str(tmp_path / "release.yaml"), "-p", project, "--no-code",
                  "--wait")
    assert again.exit_code == 0, again.output
    assert [s["state"] for s in json.loads(again.output)["steps"]] == ["cached"]
    # --no-cache asks again
    forced = json.loads(ok(cairn(platform, "--json", "pipelines", "run", str(tmp_path / "release.yaml"), "-p",
                                 project, "--no-code", "--no-cache")))["id"]
    wait_for_state(admin, project, forced, "sign-off", "waiting_approval")
    ok(cairn(platform, "pipelines", "cancel", forced, "-p", project))
    assert admin.wait_pipeline_run(project, forced, timeout=60)["status"] == "cancelled"
    assert "sign-off" in ok(cairn(platform, "pipelines", "show", forced, "-p", project, "--format", "dot"))
    granted_events = [e for e in admin.pipeline_run_events(project, first) if e["type"] == "approval.granted"]
    assert [e["data"]["comment"] for e in granted_events] == ["looks right"]
    listed = json.loads(ok(cairn(platform, "--json", "pipelines", "list", "-p", project, "--status", "succeeded")))
    assert [r["id"] for r in listed] == [json.loads(again.output)["id"], first]
    admin.close()


def test_register_list_show_and_delete_a_definition_without_echoing_its_secret(platform, project: str,
                                                                             repo: Path) -> None:
    secret = repo.parent / "hook.secret"
    secret.write_text("s3cret-s3cret-s3cret\n")
    assert json.loads(ok(cairn(platform, "--json", "pipelines", "definitions", "list", "-p", project))) == []
    pipeline_file = str(repo / "cairn" / "pipeline.yaml")
    no_secret = cairn(platform, "pipelines", "register", pipeline_file, "-p", project, "--repo", "acme/release",
                      "--clone-url", str(repo), "--hook", "github")
    assert no_secret.exit_code == 2 and "--hook github needs --secret-file" in no_secret.output
    registered = ok(cairn(platform, "--json", "pipelines", "register", pipeline_file, "-p", project, "--repo",
                          "acme/release", "--clone-url", str(repo), "--hook", "github", "--secret-file", str(secret),
                          "--param", "epochs=7"))
    assert "s3cret" not in registered
    definition = json.loads(registered)
    assert (definition["name"], definition["path"], definition["params"]) == ("release", "cairn/pipeline.yaml",
                                                                             {"epochs": 7})
    assert definition["hook"] == {"kind": "github", "secret_set": True}
    assert definition["repo"] == {"full_name": "acme/release", "clone_url": str(repo)}
    listed = json.loads(ok(cairn(platform, "pipelines", "definitions", "list", "-p", project, "--json")))
    assert [d["name"] for d in listed] == ["release"]
    shown = ok(cairn(platform, "pipelines", "definitions", "show", "release", "-p", project))
    assert "sign-off" in shown and "s3cret" not in shown
    by_name = json.loads(ok(cairn(platform, "--json", "pipelines", "run", "--definition", "release", "-p", project,
                                  "--no-code", "--param", "lr=0.3")))
    assert (by_name["pipeline"], by_name["code"], by_name["trigger"]["kind"]) == ("release", None, "manual")
    assert by_name["params"]["lr"] == 0.3
    both = cairn(platform, "pipelines", "run", pipeline_file, "--definition", "release", "-p", project)
    assert both.exit_code == 2 and "FILE or --definition NAME, not both" in both.output
    ok(cairn(platform, "pipelines", "definitions", "delete", "release", "-p", project))
    assert json.loads(ok(cairn(platform, "--json", "pipelines", "definitions", "list", "-p", project))) == []
    gone = cairn(platform, "pipelines", "definitions", "show", "release", "-p", project)
    assert gone.exit_code == 1 and "no pipeline 'release' is registered" in gone.output
