"""Request bodies of a run's reproducibility record: PUT .../environment, and the ``record`` of a
run created together with it."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class CodeRecord(BaseModel):
    """A code snapshot's record (``CodeSnapshot.record()``)."""

    model_config = ConfigDict(extra="forbid")
    archive_digest: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")
    archive_bytes: int | None = Field(default=None, ge=0)
    files: int | None = Field(default=None, ge=0)
    commit: str | None = Field(default=None, max_length=64)
    branch: str | None = Field(default=None, max_length=1000)
    remote: str | None = Field(default=None, max_length=2000)
    dirty: bool = False
    diff: str = ""
    diff_truncated: bool = False
    untracked: list[str] = Field(default_factory=list, max_length=100_000)


class RunRecordPut(BaseModel):
    model_config = ConfigDict(extra="forbid")
    environment: dict[str, Any] | None = Field(default=None, description="capture_environment() output")
    code: CodeRecord | None = None
    command: list[str] | None = Field(default=None, max_length=10_000)
    seeds: dict[str, int | str] | None = None
