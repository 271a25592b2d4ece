"""Pipelines from Python: start a run of a pipeline file (with the code of its work tree, as
``cairn jobs submit`` does, so the steps run this code), list and read runs, their events and
logs, cancel, approve or reject a waiting step, wait for the end, and manage registered
pipelines (docs/pipelines.md, "Command line").

The service is ``pipelines`` behind the gateway at ``/api/v1/pipelines``.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote

from cairn.sdk.code_snapshot import snapshot_code, upload_snapshot

BASE = "/api/v1/pipelines"
FINAL = ("succeeded", "failed", "cancelled")


def _q(part: str) -> str:
    return quote(part, safe="")


def pipeline_text(file_or_text: str | Path) -> tuple[str, Path | None]:
    """The pipeline's YAML text and the file it came from (None for text given inline). A ``Path``
    is always a file; a ``str`` holding a line break is the text itself, any other ``str`` a path."""
    if isinstance(file_or_text, str) and "\n" in file_or_text:
        return file_or_text, None
    path = Path(file_or_text)
    return path.read_text(encoding="utf-8"), path


class PipelinesMixin:
    """The pipelines service's routes (``/api/v1/pipelines``)."""

    request: Any
    _http: Any

    def _pipe(self, method: str, path: str, **kwargs: Any) -> Any:
        return self.request(method, f"{BASE}{path}", **kwargs)

    def _pipe_text(self, path: str, params: Mapping[str, Any] | None = None) -> str:
        """A GET whose answer is text (logs, drawings); errors are the usual ApiError."""
        from cairn.sdk.client import reaching

        with reaching(self.url):  # type: ignore[attr-defined]
            resp = self._http.get(f"{BASE}{path}", params=dict(params or {}))
        if resp.status_code >= 400:
            self._answer(resp)  # type: ignore[attr-defined]
        return resp.text

    @staticmethod
    def _run_path(project: str, run_id: str) -> str:
        return f"/projects/{_q(project)}/runs/{_q(run_id)}"

    # --- runs ------------------------------------------------------------------------------------

    def pipeline_code(self, project: str, code: Any, base_dir: Path) -> dict[str, Any] | None:
        """The code record a run carries (``archive_digest``, ``commit``, ``branch``, ``repo``):
        ``None``/``True`` snapshots the git work tree around
        ``base_dir`` (uncommitted changes included) and uploads it into ``project``; ``False`` or
        ``"none"`` is no code; a folder (str or Path) is snapshotted; a mapping is used as given."""
        if code is False or (isinstance(code, str) and code.lower() == "none"):
            return None
        if isinstance(code, Mapping):
            return dict(code)
        folder = base_dir if code is None or code is True else Path(code)
        folder = folder.resolve()
        if not folder.is_dir():
            raise ValueError(f"code: {folder} is not a folder (give a folder, or False for no code)")
        with tempfile.TemporaryDirectory(prefix="cairn-code-") as tmp:
            record = upload_snapshot(self, project, snapshot_code(folder, tmp))  # type: ignore[arg-type]
        # a run's code record is the archive and where it came from; the diff and file list stay
        # with the archive (an agent unpacks it), the run only names it
        return {"archive_digest": record["archive_digest"], "commit": record.get("commit"),
                "branch": record.get("branch"), "repo": record.get("remote")}

    def start_pipeline(self, project: str, file_or_text: str | Path, *, params: Mapping[str, Any] | None = None,
                       no_cache: bool = False, code: Any = None) -> dict[str, Any]:
        """Start a manual run of a pipeline (a file, or its YAML text); returns the run view, or
        ``{"skipped": true, "reason"}`` when the pipeline's ``concurrency: skip`` held it back.
        ``code``: see :meth:`pipeline_code` (default: the work tree around the file, or the
        current directory for inline text)."""
        text, path = pipeline_text(file_or_text)
        base = path.resolve().parent if path is not None else Path.cwd()
        record = self.pipeline_code(project, code, base)
        body = {"pipeline": text, "params": dict(params or {}), "no_cache": bool(no_cache), "code": record}
        return self._pipe("POST", f"/projects/{_q(project)}/runs", json=body)

    def start_registered_pipeline(self, project: str, name: str, *, params: Mapping[str, Any] | None = None,
                                  no_cache: bool = False, code: Any = None) -> dict[str, Any]:
        """Start a manual run of a registered pipeline by its name; ``code`` as for
        :meth:`start_pipeline`, the default being the work tree around the current directory."""
        record = self.pipeline_code(project, code, Path.cwd())
        body = {"definition": name, "params": dict(params or {}), "no_cache": bool(no_cache), "code": record}
        return self._pipe("POST", f"/projects/{_q(project)}/runs", json=body)

    def pipeline_runs(self, project: str, *, pipeline: str | None = None, status: str | None = None,
                      limit: int = 100) -> list[dict[str, Any]]:
        """A project's pipeline runs, newest first."""
        params = {k: v for k, v in {"pipeline": pipeline, "status": status, "limit": limit}.items() if v is not None}
        return self._pipe("GET", f"/projects/{_q(project)}/runs", params=params)["runs"]

    def pipeline_run(self, project: str, run_id: str) -> dict[str, Any]:
        """A run's view: status, trigger, params, code and each step's state."""
        return self._pipe("GET", self._run_path(project, run_id))

    def pipeline_run_drawing(self, project: str, run_id: str, fmt: str = "text") -> str:
        """The run's DAG with each step's state, drawn by the service (text, mermaid or dot)."""
        return self._pipe_text(self._run_path(project, run_id), {"format": fmt})

    def pipeline_run_events(self, project: str, run_id: str) -> list[dict[str, Any]]:
        """The run's events in order."""
        return self._pipe("GET", f"{self._run_path(project, run_id)}/events")["events"]

    def pipeline_logs(self, project: str, run_id: str, step: str | None = None) -> str:
        """A step's job output, or every job step's in pipeline order."""
        return self._pipe_text(f"{self._run_path(project, run_id)}/logs", {"step": step} if step else None)

    def cancel_pipeline_run(self, project: str, run_id: str, reason: str = "") -> dict[str, Any]:
        return self._pipe("POST", f"{self._run_path(project, run_id)}/cancel", json={"reason": reason})

    def approve_step(self, project: str, run_id: str, step: str, comment: str = "") -> dict[str, Any]:
        """Grant a waiting approval step (your role on the project must reach the step's role)."""
        return self._pipe("POST", f"{self._run_path(project, run_id)}/steps/{_q(step)}/approve",
                          json={"comment": comment})

    def reject_step(self, project: str, run_id: str, step: str, comment: str = "") -> dict[str, Any]:
        """Reject a waiting approval step: the run fails."""
        return self._pipe("POST", f"{self._run_path(project, run_id)}/steps/{_q(step)}/reject",
                          json={"comment": comment})

    def wait_pipeline_run(self, project: str, run_id: str, *, timeout: float | None = None,
                          poll_s: float = 0.5) -> dict[str, Any]:
        """Poll until the run succeeded, failed or was cancelled and return its final view;
        TimeoutError after ``timeout`` seconds (a run waiting for approval waits until then)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            view = self.pipeline_run(project, run_id)
            if view["status"] in FINAL:
                return view
            if deadline is not None and time.monotonic() > deadline:
                waiting = [s["id"] for s in view.get("steps", []) if s.get("state") == "waiting_approval"]
                hint = f" (waiting for approval: {', '.join(waiting)})" if waiting else ""
                raise TimeoutError(f"pipeline run {run_id} is still {view['status']} after {timeout}s{hint}")
            time.sleep(poll_s)

    # --- registered pipelines ----------------------------------------------------------------------

    def register_pipeline(self, project: str, file_or_text: str | Path, *, repo: str | None = None,
                          clone_url: str | None = None, hook: str | None = None, secret: str | None = None,
                          status_url: str | None = None, status_token: str | None = None,
                          path: str | None = None, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Register (or replace) a pipeline under its file's name so pushes to ``repo`` (its full
        name, fetched from ``clone_url``), its event triggers and schedules start it. ``hook``
        (github|gitlab) with ``secret`` verifies the push webhooks; ``status_url`` with
        ``status_token`` reports each run's status on the commit; ``path`` is the file's place in
        the repository (the service's default: cairn/pipeline.yaml); ``params`` override the
        file's. The answer never holds the secret or the token, only whether each is set."""
        text, _ = pipeline_text(file_or_text)
        body: dict[str, Any] = {"definition": text, "params": dict(params or {})}
        if path:
            body["path"] = path
        if repo or clone_url:
            body["repo"] = {"full_name": repo, "clone_url": clone_url}
        if hook:
            body["hook"] = {"kind": hook, "secret": secret}
        if status_url:
            body["status"] = {"url": status_url, "token": status_token}
        return self._pipe("POST", f"/projects/{_q(project)}/definitions", json=body)

    def pipeline_definitions(self, project: str) -> list[dict[str, Any]]:
        return self._pipe("GET", f"/projects/{_q(project)}/definitions")["definitions"]

    def pipeline_definition(self, project: str, name: str) -> dict[str, Any]:
        return self._pipe("GET", f"/projects/{_q(project)}/definitions/{_q(name)}")

    def delete_pipeline_definition(self, project: str, name: str) -> Any:
        return self._pipe("DELETE", f"/projects/{_q(project)}/definitions/{_q(name)}")
