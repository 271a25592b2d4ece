"""Jobs on the scheduler from Python: submit a spec (a YAML file or a dict), list, show, follow
logs, cancel, wait. ``prepare_spec`` snapshots and uploads the code (the git work tree with its
uncommitted changes by default) and reads a requirements file, so the server gets digests."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import yaml

from cairn.sdk.code_snapshot import snapshot_code, upload_snapshot

FINAL = ("succeeded", "failed", "cancelled")


def _q(part: str) -> str:
    return quote(part, safe="")


def yaml_problem(path: str | Path, err: yaml.YAMLError) -> str:
    """``file:line:col: what is wrong`` for a YAML error (PyYAML's own text spans three lines and
    names ``<unicode string>`` instead of the file)."""
    mark = getattr(err, "problem_mark", None)
    where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark is not None else str(path)
    problem = getattr(err, "problem", None) or str(err).splitlines()[0]
    context = getattr(err, "context", None)
    return f"{where}: {problem}" + (f" ({context})" if context else "") + ": not valid YAML"


def load_spec(path: str | Path) -> dict[str, Any]:
    """Read a job spec from a YAML (or JSON) file; a syntax error is a ValueError saying where."""
    try:
        loaded = yaml.safe_load(Path(path).read_text())
    except yaml.YAMLError as err:
        raise ValueError(yaml_problem(path, err)) from None
    if not isinstance(loaded, dict):
        raise ValueError(f"{path}: a job spec is a mapping (command:, resources:, ...)")
    return loaded


def read_requirements(path: Path) -> list[str]:
    lines = [line.split("#", 1)[0].strip() for line in path.read_text().splitlines()]
    return [line for line in lines if line]


def prepare_spec(client: Any, spec: dict[str, Any], base_dir: Path, project: str) -> dict[str, Any]:
    """Resolve the client-side parts of a spec: ``code`` (a folder to snapshot, default the work
    tree around ``base_dir``; ``none`` for no code; uploaded into ``project``) and
    ``requirements`` given as a file."""
    spec = dict(spec)
    spec.pop("project", None)
    code = spec.get("code", ".")
    if code is None or code is False or (isinstance(code, str) and code.lower() == "none"):
        spec["code"] = None
    elif isinstance(code, str):
        folder = (base_dir / code).resolve()
        if not folder.is_dir():
            raise ValueError(f"code: {folder} is not a folder (use a path, or 'none' for no code)")
        with tempfile.TemporaryDirectory(prefix="cairn-code-") as tmp:
            spec["code"] = upload_snapshot(client, project, snapshot_code(folder, tmp))
    requirements = spec.get("requirements")
    if isinstance(requirements, str):
        spec["requirements"] = read_requirements((base_dir / requirements).resolve())
    return spec


class JobsMixin:
    """Scheduler routes (``/api/v1/scheduler``)."""

    request: Any
    _http: Any

    def _sched(self, method: str, path: str, **kwargs: Any) -> Any:
        return self.request(method, f"/api/v1/scheduler{path}", **kwargs)

    def submit_job(self, spec: dict[str, Any] | str | Path, project: str | None = None, *,
                   base_dir: str | Path | None = None) -> dict[str, Any]:
        """Submit a job from a spec dict or a YAML file; returns the job (with ``run_id``)."""
        if isinstance(spec, (str, Path)):
            path = Path(spec)
            raw, base = load_spec(path), path.resolve().parent
        else:
            raw, base = dict(spec), Path.cwd()
        project = project or raw.get("project")
        if not project:
            raise ValueError("say which project the job belongs to (project: in the spec, or --project)")
        prepared = prepare_spec(self, raw, Path(base_dir) if base_dir else base, project)
        return self._sched("POST", f"/projects/{_q(project)}/jobs", json=prepared)

    def list_jobs(self, project: str, *, status: str | None = None, queue: str | None = None,
                  limit: int = 100) -> list[dict[str, Any]]:
        params = {k: v for k, v in {"status": status, "queue": queue, "limit": limit}.items() if v is not None}
        return self._sched("GET", f"/projects/{_q(project)}/jobs", params=params)["jobs"]

    def get_job(self, project: str, job_id: str) -> dict[str, Any]:
        return self._sched("GET", f"/projects/{_q(project)}/jobs/{_q(job_id)}")

    def cancel_job(self, project: str, job_id: str) -> dict[str, Any]:
        return self._sched("POST", f"/projects/{_q(project)}/jobs/{_q(job_id)}/cancel")

    def job_log_chunks(self, project: str, job_id: str, *, attempt: int | None = None,
                       follow: bool = False) -> Iterator[bytes]:
        """The attempt's output as it arrives (``follow``: until the attempt ends)."""
        params: dict[str, Any] = {"follow": str(follow).lower()}
        if attempt is not None:
            params["attempt"] = attempt
        import httpx

        from cairn.sdk.client import reaching

        with reaching(self.url), self._http.stream(  # type: ignore[attr-defined]
                "GET", f"/api/v1/scheduler/projects/{_q(project)}/jobs/{_q(job_id)}/logs",
                params=params, timeout=httpx.Timeout(30.0, read=None)) as resp:
            if resp.status_code >= 400:
                resp.read()
                self._answer(resp)  # type: ignore[attr-defined]
            yield from resp.iter_bytes()

    def job_logs(self, project: str, job_id: str, *, attempt: int | None = None) -> str:
        return b"".join(self.job_log_chunks(project, job_id, attempt=attempt)).decode(errors="replace")

    def wait_job(self, project: str, job_id: str, *, timeout: float | None = None,
                 poll_s: float = 0.2) -> dict[str, Any]:
        """Wait until the job succeeded, failed or was cancelled; TimeoutError after ``timeout``."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            job = self.get_job(project, job_id)
            if job["status"] in FINAL:
                return job
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} is still {job['status']} after {timeout}s")
            time.sleep(poll_s)

    def list_agents(self, include_lost: bool = False) -> list[dict[str, Any]]:
        return self._sched("GET", "/agents", params={"include_lost": str(include_lost).lower()})["agents"]
