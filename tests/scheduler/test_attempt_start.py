"""How an agent starts a job's command: with the parent-death signal set (by setpriv where it is
installed, so no Python runs between fork and exec), and a command that does not exist still fails
to start instead of starting and exiting 127."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from cairn.agent import attempt
from cairn.agent.attempt import with_death_signal


def test_a_missing_command_fails_before_anything_starts(tmp_path: Path) -> None:
    env = {"PATH": str(tmp_path)}
    with pytest.raises(FileNotFoundError):
        with_death_signal(["no-such-program-here"], cwd=tmp_path, env=env)
    with pytest.raises(FileNotFoundError):
        with_death_signal(["./missing.sh"], cwd=tmp_path, env=env)
    script = tmp_path / "not-executable.sh"
    script.write_text("echo hi\n")
    with pytest.raises(PermissionError):
        with_death_signal(["./not-executable.sh"], cwd=tmp_path, env=env)


@pytest.mark.skipif(attempt.SETPRIV is None, reason="util-linux setpriv is not installed")
def test_the_command_runs_under_setpriv_with_its_arguments(tmp_path: Path) -> None:
    argv, before_exec = with_death_signal(["sh", "-c", 'echo "$0:$1"', "zero", "one"], cwd=tmp_path,
                                          env={"PATH": os.environ["PATH"]})
    assert before_exec is None and argv[:4] == [attempt.SETPRIV, "--pdeathsig", "KILL", "--"]
    out = subprocess.run(argv, cwd=tmp_path, capture_output=True, text=True, check=True).stdout
    assert out.strip() == "zero:one"  # the command's arguments reach it as they were


def test_without_setpriv_the_child_sets_the_signal_itself(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(attempt, "SETPRIV", None)
    argv, before_exec = with_death_signal([sys.executable, "-c", "pass"], cwd=tmp_path, env={})
    assert argv == [sys.executable, "-c", "pass"] and before_exec is attempt._die_with_agent
