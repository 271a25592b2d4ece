"""Request bodies of a run's reproducibility record: PUT .../environment, and the ``record`` of a
run created together with it."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class NotebookCodeRecord(BaseModel):
    """How a notebook run's code was found (cairn.sdk.notebook; run.created v3, run.environment_recorded v2)."""

    model_config = ConfigDict(extra="forbid")
    found_by: Literal["session_hint", "jupyter_server", "history"]
    name: str = Field(max_length=1000)
    cells: int = Field(ge=0)
    outputs_kept: bool = False


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
    kind: Literal["notebook"] | None = None  # None: a folder of files (a work tree)
    notebook: NotebookCodeRecord | None = None

    def event_data(self) -> dict[str, Any]:
        """The record as events carry it: ``kind`` and ``notebook`` only when set, so a work tree's
        record stays exactly what it was before notebooks (same hash, same event data)."""
        data = self.model_dump()
        for optional in ("kind", "notebook"):
            if data[optional] is None:
                del data[optional]
        return data


class RunRecordPut(BaseModel):
    model_config = ConfigDict(extra="forbid")
    environment: dict[str, Any] | None = Field(default=None, description="capture_environment() output")
    code: CodeRecord | None = None
    command: list[str] | None = Field(default=None, max_length=10_000)
    seeds: dict[str, int | str] | None = None
