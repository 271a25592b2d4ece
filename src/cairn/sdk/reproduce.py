"""Re-run a run from its record: ``cairn runs reproduce``.

A run made by a job is re-queued with its job's spec as stored in ``job.submitted``: the same code
archive (by digest), requirements, datasets (by version), params, seed, resources and command. A run
started with ``cairn.start_run`` elsewhere (a laptop) is re-queued from its reproducibility record:
the code snapshot, the command line, the seeds, the params and the dataset versions it used (a
notebook run executes its notebook: :mod:`cairn.sdk.notebook_run`). The new
run carries the tag ``cairn.reproduces=<original run id>``; when it ends, the diff against the
original says what differed in the environment and which final metrics moved beyond the tolerance.
"""

from __future__ import annotations

from typing import Any

from cairn.protocol import NOTEBOOK_CODE_KIND
from cairn.sdk.client import ApiError, Client
from cairn.sdk.notebook_run import notebook_command

REPRODUCES_TAG = "cairn.reproduces"


class CannotReproduce(ValueError):
    """The run's record lacks something a re-run needs (code, command)."""


def _laptop_command(argv: list[str] | None, override: list[str] | None) -> list[str]:
    if override:
        return override
    if not argv:
        raise CannotReproduce("the run recorded no command line; give one with --command")
    script = argv[0]
    if script in ("-c", "-m") or script.startswith("-"):
        raise CannotReproduce(f"the run was started as 'python {script} ...', which cannot be re-run "
                              "from its record; give the command with --command")
    if script.startswith("/"):
        raise CannotReproduce(f"the run was started as {script!r}, an absolute path on its machine; "
                              "give the command relative to the code folder with --command")
    return ["python", *argv] if script.endswith(".py") else list(argv)


def spec_from_record(run: dict[str, Any], record: dict[str, Any], *,
                     command: list[str] | None = None) -> dict[str, Any]:
    """A job spec that re-runs a run started outside the scheduler, from its recorded inputs."""
    code = record.get("code")
    if not code or not code.get("archive_digest"):
        raise CannotReproduce("the run has no code snapshot in its record (it was not started in a folder "
                              "Cairn could snapshot); nothing to re-run")
    seeds = record.get("seeds") or {}
    seed = seeds.get("seed", next(iter(seeds.values()), None)) if seeds else None
    datasets = [f"{d['dataset']}@{d['version']}" for d in record.get("datasets") or []]
    if code.get("kind") == NOTEBOOK_CODE_KIND and not command:  # run the notebook, not its kernel's argv
        command = notebook_command(code)
    spec: dict[str, Any] = {"command": _laptop_command(record.get("command"), command),
                            "code": code, "params": dict(run.get("params") or {}), "datasets": datasets}
    if isinstance(seed, int):
        spec["seed"] = seed
    return spec


def reproduction_spec(client: Client, project: str, run_id: str, *, queue: str | None = None,
                      command: list[str] | None = None) -> dict[str, Any]:
    """The job spec that re-runs ``run_id`` with the same code, data, params, seeds and requirements."""
    run = client.get_run(project, run_id)
    job_id = (run.get("tags") or {}).get("cairn.job_id")
    if job_id:
        spec = dict(client.get_job(project, job_id)["spec"])  # type: ignore[attr-defined]
        if command:
            spec["command"] = command
    else:
        try:
            record = client.get_run_environment(project, run_id)
        except ApiError as err:
            if err.status == 404:
                raise CannotReproduce(f"run {run_id} has no reproducibility record and no job; "
                                      "it cannot be re-run") from None
            raise
        spec = spec_from_record(run, record, command=command)
        experiment = run.get("experiment_name") or run.get("experiment")
        if isinstance(experiment, str):
            spec["experiment"] = experiment
    if queue:
        spec["queue"] = queue
    spec["name"] = f"reproduce-{run_id[-8:]}"
    spec["run_tags"] = {REPRODUCES_TAG: run_id}
    return spec


def reproduce(client: Client, project: str, run_id: str, *, queue: str | None = None,
              command: list[str] | None = None) -> dict[str, Any]:
    """Queue the re-run; returns the new job (with its ``run_id``)."""
    spec = reproduction_spec(client, project, run_id, queue=queue, command=command)
    return client.submit_job(spec, project)


def report(client: Client, original: str, reproduced: str, *, tolerance: float = 0.0,
           relative: bool = False) -> dict[str, Any]:
    """How close the re-run came: the run diff plus a verdict on the final metrics."""
    diff = client.diff_runs(original, reproduced, tolerance=tolerance, relative=relative)
    metrics = diff.get("metrics") or {}
    outside = sorted(k for k, v in (metrics.get("metrics") or {}).items() if not v.get("within_tolerance"))
    return {"original": original, "reproduced": reproduced, "tolerance": tolerance, "relative": relative,
            "metrics_within_tolerance": bool(metrics.get("all_within_tolerance", True)),
            "metrics_outside_tolerance": outside, "missing_metrics": metrics.get("only_in_a", []),
            "environment": diff.get("environment"), "diff": diff}
