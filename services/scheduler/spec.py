"""The job spec: what a job runs, with what, where. Checked here once, stored normalised in
``job.submitted`` (so every reader sees the same shape)."""

from __future__ import annotations

import shlex
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from cairn.kernel.errors import InvalidInput
from cairn.kernel.ids import DATASET_NAME, DIGEST_RE, FREE_NAME_PATTERN, NAME_RE, anchored
from cairn.protocol import memory_mib

DATASET_REF_RE = anchored(rf"{DATASET_NAME}(@[A-Za-z0-9_.-]{{1,64}})?")
PARAM_KEY_RE = anchored(r"[A-Za-z0-9_.-]{1,250}")
ENV_NAME_RE = anchored(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
MAX_NODES = 64
PIPELINE_ENV_PREFIX = "CAIRN_PIPELINE"  # set by the pipelines engine on its steps' jobs (docs/pipelines.md)


class Resources(BaseModel):
    model_config = ConfigDict(extra="forbid")

    cpus: float = Field(default=1.0, ge=0, le=4096)
    memory_mib: int = Field(default=0, ge=0)
    gpus: int = Field(default=0, ge=0, le=64)
    gpu_type: str | None = Field(default=None, max_length=128)


class Code(BaseModel):
    """A code snapshot record (see cairn.sdk.code_snapshot); only the digest is required."""

    model_config = ConfigDict(extra="allow")

    archive_digest: str

    @field_validator("archive_digest")
    @classmethod
    def _digest(cls, value: str) -> str:
        if not DIGEST_RE.match(value):
            raise ValueError("archive_digest must be 64 lowercase hex characters (a BLAKE3 digest)")
        return value


class JobSpec(BaseModel):
    """A job as submitted (after the SDK uploaded the code and read a requirements file)."""

    model_config = ConfigDict(extra="forbid")

    command: list[str] = Field(min_length=1)
    code: Code | None = None
    requirements: list[str] = Field(default_factory=list, max_length=500)
    resources: Resources = Field(default_factory=Resources)
    datasets: list[str] = Field(default_factory=list, max_length=100)
    params: dict[str, Any] = Field(default_factory=dict, max_length=1000)
    seed: int | None = None
    queue: str = "default"
    priority: int = Field(default=0, ge=-1000, le=1000)
    timeout: float | None = Field(default=None, gt=0)
    max_retries: int = Field(default=0, ge=0, le=100)
    nodes: int = Field(default=1, ge=1, le=MAX_NODES)
    experiment: str = Field(default="default", pattern=FREE_NAME_PATTERN)
    name: str | None = Field(default=None, pattern=FREE_NAME_PATTERN)
    env: dict[str, str] = Field(default_factory=dict)

    @field_validator("command", mode="before")
    @classmethod
    def _command(cls, value: Any) -> Any:
        return shlex.split(value) if isinstance(value, str) else value

    @field_validator("queue")
    @classmethod
    def _queue(cls, value: str) -> str:
        if not NAME_RE.match(value):
            raise ValueError("queue must be 1-63 of a-z, 0-9, '-', '_'")
        return value

    @field_validator("datasets")
    @classmethod
    def _datasets(cls, value: list[str]) -> list[str]:
        for ref in value:
            if not DATASET_REF_RE.match(ref):
                raise ValueError(f"dataset {ref!r} is not a reference like 'mnist@v3' or 'mnist'")
        return value

    @field_validator("params")
    @classmethod
    def _params(cls, value: dict[str, Any]) -> dict[str, Any]:
        for key, item in value.items():
            if not PARAM_KEY_RE.match(key):
                raise ValueError(f"param name {key!r} is not valid: letters, digits, '_', '.', '-'")
            if isinstance(item, (dict, list)) or item is None:
                raise ValueError(f"param {key!r} must be a string, number or boolean")
        return value

    @field_validator("env")
    @classmethod
    def _env(cls, value: dict[str, str]) -> dict[str, str]:
        for key in value:
            reserved = key.startswith("CAIRN_") and not key.startswith(PIPELINE_ENV_PREFIX)
            if not ENV_NAME_RE.match(key) or reserved:
                raise ValueError(f"env name {key!r} is not allowed (letters, digits, '_'; not CAIRN_*, "
                                 f"except the pipelines' {PIPELINE_ENV_PREFIX}*)")
        return value


def parse_spec(raw: dict[str, Any]) -> dict[str, Any]:
    """Check a spec and return it normalised; InvalidInput names the field to fix."""
    if not isinstance(raw, dict):
        raise InvalidInput("the job spec must be an object", details={"field": "spec"})
    raw = dict(raw)
    resources = raw.get("resources")
    if isinstance(resources, dict) and "memory" in resources:
        resources = dict(resources)
        try:
            resources["memory_mib"] = memory_mib(resources.pop("memory"))
        except ValueError as err:
            raise InvalidInput(f"resources.memory: {err}", details={"field": "resources.memory"}) from None
        raw["resources"] = resources
    try:
        spec = JobSpec.model_validate(raw)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "spec"
        raise InvalidInput(f"{where}: {first['msg']}", details={"field": where}) from None
    return spec.model_dump(mode="json")
