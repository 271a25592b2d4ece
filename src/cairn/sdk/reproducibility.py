"""Recording a run's reproducibility record from the SDK: the environment it runs on, a snapshot
of its code (git commit, branch, remote, uncommitted diff, and the content-addressed archive,
uploaded to the artifact store), its command and its seeds.

``cairn.start_run`` calls :func:`setup_reproducibility` once; it never fails the run: anything that
cannot be recorded becomes a warning. Turn it off with ``start_run(record_environment=False)`` or
``CAIRN_RECORD_ENVIRONMENT=0``.
"""

from __future__ import annotations

import os
import random
import sys
import tempfile
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cairn.sdk.client import ApiError
from cairn.sdk.code_snapshot import CodeSnapshot, CodeSnapshotError, snapshot_code, upload_snapshot
from cairn.sdk.environment import capture_environment
from cairn.sdk.notebook import notebook_snapshot

if TYPE_CHECKING:
    from cairn.sdk.client import Client
    from cairn.sdk.run import ActiveRun

OFF_VALUES = ("0", "false", "no", "off")


def recording_enabled(flag: bool | None = None) -> bool:
    """``flag`` when given, else ``$CAIRN_RECORD_ENVIRONMENT`` (on unless 0/false/no/off)."""
    if flag is not None:
        return flag
    return os.environ.get("CAIRN_RECORD_ENVIRONMENT", "1").strip().lower() not in OFF_VALUES


def seed_everything(seed: int) -> list[str]:
    """Seed ``random``, numpy (when installed) and torch (only when already imported); returns
    the names of what was seeded."""
    random.seed(seed)
    seeded = ["random"]
    try:
        import numpy as np
    except ImportError:
        pass
    else:
        np.random.seed(seed % (1 << 32))
        seeded.append("numpy")
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.manual_seed(seed)  # seeds every device too
        seeded.append("torch")
    return seeded


def current_command() -> list[str]:
    """How this process was started: the interpreter's name (not its path) and ``sys.argv``."""
    return [Path(sys.executable).name if sys.executable else "python", *sys.argv]


def _git_root(path: Path) -> Path | None:
    for folder in (path, *path.parents):
        if (folder / ".git").exists():
            return folder
    return None


def code_record(client: Client, project: str,
                code_dir: str | os.PathLike[str] | None = None) -> dict[str, Any] | None:
    """Snapshot the git work tree around ``code_dir`` (default: the working directory), upload the
    archive into ``project``, and return its record; None with a warning when that is not possible."""
    start = Path(code_dir or os.getcwd()).resolve()
    with tempfile.TemporaryDirectory(prefix="cairn-code-") as tmp:
        notebook = notebook_snapshot(tmp)  # in Jupyter or IPython the notebook is the code
        if notebook is not None:
            return upload_snapshot(client, project, notebook)
        if _git_root(start) is None:
            warnings.warn(f"cairn: {start} is not in a git work tree, so the run has no code snapshot "
                          "(run from your repository to record commit, diff and code)", stacklevel=3)
            return None
        snap = snapshot_code(start, tmp)
        return upload_snapshot(client, project, snap)


def existing_record(client: Client, project: str, run_id: str) -> dict[str, Any] | None:
    try:
        return client.get_run_environment(project, run_id)
    except ApiError as err:
        if err.status == 404:
            return None
        raise


def record_run_environment(run: ActiveRun, *, seeds: dict[str, Any] | None = None,
                           code_dir: str | os.PathLike[str] | None = None,
                           command: list[str] | None = None) -> dict[str, Any] | None:
    """Record the sections of the run's record that are not there yet (a job's run may already
    have its code recorded by the scheduler). Returns the record, or None with a warning."""
    try:
        found = existing_record(run.client, run.project, run.id) or {}
        command = command or current_command()
        body: dict[str, Any] = {"seeds": dict(seeds or {})}
        if found.get("environment") is None:
            body["environment"] = capture_environment(command, seeds)
        if found.get("command") is None:
            body["command"] = command
        if found.get("code") is None:
            try:
                body["code"] = code_record(run.client, run.project, code_dir)
            except (CodeSnapshotError, OSError, ApiError) as err:
                warnings.warn(f"cairn: no code snapshot for run {run.id}: {err}", stacklevel=2)
        body = {k: v for k, v in body.items() if v}
        if not body:
            return found
        return run.client.record_run_environment(run.project, run.id, **body)
    except Exception as err:  # recording must never fail the run
        warnings.warn(f"cairn: could not record the environment of run {run.id}: {err}", stacklevel=2)
        return None


def first_record(*, record: bool | None = None, seed: int | None = None,
                 code: CodeSnapshot | None = None) -> dict[str, Any]:
    """What a new run is created with (``start_run``): apply ``seed``, then its environment,
    command, seeds and code snapshot (:func:`snapshot_for_start`), captured here before any
    request. Never fails the run: what cannot be captured becomes a warning."""
    seeds = {"seed": seed} if seed is not None else {}
    if seed is not None:
        seed_everything(seed)
    body: dict[str, Any] = {"seeds": seeds}
    if recording_enabled(record):
        command = current_command()
        body["command"] = command
        try:
            body["environment"] = capture_environment(command, seeds)
        except Exception as err:  # recording must never fail the run
            warnings.warn(f"cairn: could not capture the environment: {err}", stacklevel=3)
        if code is not None:
            body["code"] = code.record()
    return {k: v for k, v in body.items() if v}


def snapshot_for_start(tmp: str | os.PathLike[str], *, record: bool | None = None,
                       code_dir: str | os.PathLike[str] | None = None,
                       notebook_outputs: bool | None = None) -> CodeSnapshot | None:
    """The code snapshot a new run is created with (``start_run``), made into ``tmp`` before any
    request so that its record travels in the one start request; the archive is uploaded after
    (:func:`upload_code`), once the project surely exists. Inside Jupyter or IPython it is the
    notebook (:mod:`cairn.sdk.notebook`, outputs kept with ``notebook_outputs``). None outside a
    git work tree (with a warning), when recording is off, or when the snapshot fails (with a warning)."""
    if not recording_enabled(record):
        return None
    try:  # in Jupyter or IPython the notebook is the code (docs/notebooks.md)
        notebook = notebook_snapshot(tmp, outputs=notebook_outputs)
    except (CodeSnapshotError, OSError, ValueError) as err:
        warnings.warn(f"cairn: the notebook could not be recorded, so the run has no code snapshot: {err}",
                      stacklevel=3)
        return None
    if notebook is not None:
        return notebook
    start = Path(code_dir or os.getcwd()).resolve()
    if _git_root(start) is None:
        warnings.warn(f"cairn: {start} is not in a git work tree, so the run has no code snapshot "
                      "(run from your repository to record commit, diff and code)", stacklevel=3)
        return None
    try:
        return snapshot_code(start, tmp)
    except (CodeSnapshotError, OSError) as err:
        warnings.warn(f"cairn: no code snapshot for the new run: {err}", stacklevel=3)
        return None


def upload_code(client: Client, project: str, run_id: str, snap: CodeSnapshot) -> None:
    """Upload a started run's code archive into its project (skipped when the project holds it
    already). The run's record names the archive from its first event; an upload that fails is
    a warning, and the record says which archive to upload again."""
    try:
        upload_snapshot(client, project, snap)
    except Exception as err:  # recording must never fail the run
        warnings.warn(f"cairn: the code archive of run {run_id} ({snap.digest}) was not uploaded: {err}",
                      stacklevel=3)


def setup_reproducibility(run: ActiveRun, *, record: bool | None = None, seed: int | None = None) -> None:
    """What ``start_run`` does for reproducibility: apply ``seed``, then record the environment,
    code, command and seeds (unless turned off; seeds are recorded either way)."""
    seeds = {"seed": seed} if seed is not None else {}
    if seed is not None:
        seed_everything(seed)
    if recording_enabled(record):
        record_run_environment(run, seeds=seeds)
    elif seeds:
        try:
            run.client.record_run_environment(run.project, run.id, seeds=seeds)
        except Exception as err:
            warnings.warn(f"cairn: could not record the seed of run {run.id}: {err}", stacklevel=2)


def code_diff(client: Client, digest_a: str, digest_b: str) -> str:
    """The unified diff between two code archives in the artifact store (downloaded and verified)."""
    from cairn.sdk.code_snapshot import diff_snapshots, read_snapshot

    with tempfile.TemporaryDirectory(prefix="cairn-diff-") as tmp:
        files = []
        for name, digest in (("a", digest_a), ("b", digest_b)):
            path = client.artifacts.download_blob(digest, Path(tmp) / f"{name}.tar.gz")
            files.append(read_snapshot(path))
        return diff_snapshots(files[0], files[1], label_old="a", label_new="b")


def diff_runs_with_code(client: Client, a: str, b: str, *, tolerance: float = 0.0, relative: bool = False,
                        code: bool = True, system_metrics: bool = False) -> dict[str, Any]:
    """``GET /runs/diff`` plus, with ``code``, the unified diff of the two runs' code archives
    (``code.unified_diff``; ``code.unified_diff_error`` says why when it cannot be made)."""
    out = client.diff_runs(a, b, tolerance=tolerance, relative=relative, system_metrics=system_metrics)
    section = out["code"]
    digests = [(s or {}).get("archive_digest") for s in (section["a"], section["b"])]
    if not code:
        return out
    if not all(digests):
        section["unified_diff_error"] = "a run has no code archive"
    elif section["same_archive"]:
        section["unified_diff"] = ""
    else:
        try:
            section["unified_diff"] = code_diff(client, str(digests[0]), str(digests[1]))
        except (ApiError, OSError, ValueError) as err:
            section["unified_diff_error"] = str(err)
    return out
