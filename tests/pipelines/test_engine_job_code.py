"""A push-triggered run's code record as its job steps' code: the job's run record (the registry's
``CodeRecord``, which refuses unknown fields) must take it, or no job step of a pushed run runs
(found by tests/pipelines/test_pipeline_e2e.py: "the scheduler refused the job: creating the job's
run: record.code.repo: Extra inputs are not permitted"). No platform."""

from __future__ import annotations

import pydantic
import pytest

from cairn.services.pipelines.engine import job_code
from cairn.services.registry.run_record_body import CodeRecord

PUSHED = {"archive_digest": "a" * 64, "tree_digest": "b" * 64, "commit": "c" * 40, "branch": "main",
          "repo": "acme/fraud"}


def test_a_pushed_runs_code_record_is_refused_as_it_is() -> None:
    with pytest.raises(pydantic.ValidationError, match="repo|tree_digest"):
        CodeRecord.model_validate(PUSHED)


def test_job_code_keeps_the_snapshot_fields_and_names_the_repository_as_the_remote() -> None:
    code = job_code(PUSHED)
    assert code == {"archive_digest": "a" * 64, "commit": "c" * 40, "branch": "main", "remote": "acme/fraud"}
    assert CodeRecord.model_validate(code).archive_digest == "a" * 64


def test_a_cli_snapshot_record_passes_unchanged() -> None:
    record = {"archive_digest": "a" * 64, "archive_bytes": 10, "files": 2, "commit": "c" * 40, "branch": "dev",
              "remote": "https://example.invalid/acme/fraud.git", "dirty": True, "diff": "x", "diff_truncated": False,
              "untracked": ["new.py"]}
    assert job_code(record) == record
    CodeRecord.model_validate(job_code(record))
