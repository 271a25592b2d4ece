"""The parsed, normalised pipeline: typed, frozen dataclasses that the engine, the CLI and the API
share, a canonical ``to_dict()`` and a digest of it (two files that mean the same pipeline, with
different comments, key order or defaults spelled out, get the same digest).

The file format is documented in docs/pipelines.md ("The pipeline file"); parsing and every
problem it can report live in :mod:`cairn.pipelines.validate`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from cairn.pipelines.expr import Expr, to_source

CONCURRENCY = ("queue", "cancel-older", "skip")
ROLES = ("viewer", "editor", "admin")
DRIFT_METHODS = ("ks", "wasserstein", "psi", "jensenshannon", "chisquare")
SPECIAL_KINDS = ("gate", "data_check", "approval", "register", "promote", "deploy")
STEP_ID = re.compile(r"\A[A-Za-z_][A-Za-z0-9_-]{0,63}\Z")
# dataset:NAME[@vN] | artifact:STEP/NAME | model:NAME[@vN|@alias]
DATASET_REF = re.compile(r"\Adataset:(?P<name>[A-Za-z0-9][A-Za-z0-9_-]{0,127})(?:@v(?P<version>[1-9][0-9]*))?\Z")
ARTIFACT_REF = re.compile(r"\Aartifact:(?P<step>[A-Za-z_][A-Za-z0-9_-]{0,63})/(?P<name>[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})\Z")
MODEL_REF = re.compile(r"\Amodel:(?P<name>[A-Za-z0-9_][A-Za-z0-9_\-.:]{0,249}?)"
                       r"(?:@(?:v(?P<version>[1-9][0-9]*)|(?P<alias>[A-Za-z][A-Za-z0-9_-]{0,63})))?\Z")
OUTPUT_NAME = re.compile(r"\A[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}\Z")


@dataclass(frozen=True)
class Ref:
    """What an input names: ``dataset`` (name, version), ``artifact`` (step, name) or ``model``
    (name, version or alias). Passed between steps by digest, resolved when the run starts."""

    kind: str
    name: str
    step: str | None = None
    version: int | None = None
    alias: str | None = None

    def __str__(self) -> str:
        if self.kind == "artifact":
            return f"artifact:{self.step}/{self.name}"
        suffix = f"@v{self.version}" if self.version else (f"@{self.alias}" if self.alias else "")
        return f"{self.kind}:{self.name}{suffix}"


def parse_ref(text: str) -> Ref | None:
    """``text`` as a :class:`Ref`, or None when it is not one of the three forms."""
    if (m := DATASET_REF.match(text)) is not None:
        return Ref("dataset", m["name"], version=int(m["version"]) if m["version"] else None)
    if (m := ARTIFACT_REF.match(text)) is not None:
        return Ref("artifact", m["name"], step=m["step"])
    if (m := MODEL_REF.match(text)) is not None:
        return Ref("model", m["name"], version=int(m["version"]) if m["version"] else None, alias=m["alias"])
    return None


@dataclass(frozen=True)
class Resources:
    cpus: float = 1.0
    memory_mib: int = 1024
    gpus: int = 0
    gpu_type: str | None = None


@dataclass(frozen=True)
class Champion:
    """Compare against the run behind ``model``'s ``alias``: better by ``min_improvement`` on
    ``metric`` (``direction`` max or min), averaged over at least ``min_seeds`` runs."""

    model: str
    alias: str
    metric: str
    direction: str = "max"
    min_improvement: float = 0.0
    min_seeds: int = 1


@dataclass(frozen=True)
class Gate:
    step: str
    conditions: tuple[Expr, ...] = ()
    champion: Champion | None = None


@dataclass(frozen=True)
class DataCheck:
    dataset: Ref
    reference: str
    methods: dict[str, str] = field(default_factory=dict)
    thresholds: dict[str, float] = field(default_factory=dict)
    drift_share: float = 0.5


@dataclass(frozen=True)
class Approval:
    role: str = "admin"
    message: str = ""


@dataclass(frozen=True)
class Register:
    model: str
    artifact: Ref


@dataclass(frozen=True)
class Promote:
    source: str  # the register step whose version moves
    alias: str


@dataclass(frozen=True)
class Deploy:
    deployment: str
    environment: str
    source: str | None = None  # a register or promote step
    model: Ref | None = None
    bake_s: float = 0.0


Special = Gate | DataCheck | Approval | Register | Promote | Deploy


@dataclass(frozen=True)
class PushTrigger:
    """``on.push``: which pushes start the pipeline (glob lists; empty means any), as
    :class:`cairn.pipelines.triggers.PushFilter` reads them."""

    branches: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    paths: tuple[str, ...] = ()


@dataclass(frozen=True)
class EventTrigger:
    """``on.event``: an event type (or ``aggregate.*``) and ``where`` (dotted path -> value or
    tuple of allowed values), as :class:`cairn.pipelines.triggers.EventFilter` reads them."""

    type: str
    where: tuple[tuple[str, Any], ...] = ()


@dataclass(frozen=True)
class ScheduleTrigger:
    """``on.schedule``: a five-field cron expression (or macro) in an IANA time zone."""

    cron: str
    tz: str = "UTC"


@dataclass(frozen=True)
class Triggers:
    """What starts the pipeline besides a person (``manual``, true unless the file says false).
    ``declared``: whether the file had ``on:`` at all (a file without one keeps its digest)."""

    push: PushTrigger | None = None
    events: tuple[EventTrigger, ...] = ()
    schedules: tuple[ScheduleTrigger, ...] = ()
    manual: bool = True
    declared: bool = False

    def to_dict(self) -> dict[str, Any]:
        """The canonical ``on:``: only the kinds declared (so it reads back as the same triggers)."""
        out: dict[str, Any] = {}
        if self.push is not None:
            out["push"] = _plain(self.push)
        if self.events:
            out["event"] = [{"type": e.type, "where": {k: list(v) if isinstance(v, tuple) else v
                                                       for k, v in sorted(e.where)}} for e in self.events]
        if self.schedules:
            out["schedule"] = [{"cron": s.cron, "tz": s.tz} for s in self.schedules]
        out["manual"] = self.manual
        return out


@dataclass(frozen=True)
class Step:
    """One step: a job an agent runs (``kind == "job"``) or a special step the engine decides."""

    id: str
    kind: str
    needs: tuple[str, ...] = ()
    when: Expr | None = None
    inputs: dict[str, Ref] = field(default_factory=dict)
    outputs: tuple[str, ...] = ()
    command: tuple[str, ...] | str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    resources: Resources = field(default_factory=Resources)
    queue: str = "default"
    retries: int = 0
    timeout_s: float | None = None
    env: dict[str, str] = field(default_factory=dict)
    special: Special | None = None
    line: int = 0  # where the step starts in the file, for messages

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "kind": self.kind, "needs": list(self.needs),
                               "when": to_source(self.when) if self.when is not None else None,
                               "inputs": {k: str(v) for k, v in sorted(self.inputs.items())},
                               "outputs": list(self.outputs)}
        if self.kind == "job":
            out.update(command=list(self.command) if isinstance(self.command, tuple) else self.command,
                       params=dict(sorted(self.params.items())), resources=_plain(self.resources),
                       queue=self.queue, retries=self.retries, timeout_s=self.timeout_s,
                       env=dict(sorted(self.env.items())))
        else:
            out[self.kind] = _plain(self.special)
        return out


@dataclass(frozen=True)
class Pipeline:
    name: str
    steps: tuple[Step, ...]
    params: dict[str, Any] = field(default_factory=dict)
    concurrency: str = "queue"
    order: tuple[str, ...] = ()  # topological, ties by file order
    levels: tuple[tuple[str, ...], ...] = ()  # level k: steps whose longest path from a root is k
    on: Triggers = field(default_factory=Triggers)

    @cached_property
    def _by_id(self) -> dict[str, Step]:
        return {step.id: step for step in reversed(self.steps)}  # the first of a duplicated id wins

    def step(self, step_id: str) -> Step:
        """The step with id ``step_id``; KeyError names the known ids when there is none."""
        try:
            return self._by_id[step_id]
        except KeyError:
            raise KeyError(f"no step {step_id!r} in pipeline {self.name!r}: {', '.join(self.order)}") from None

    def to_dict(self) -> dict[str, Any]:
        """The canonical form: defaults spelled out, expressions re-printed, maps sorted. ``on``
        is part of it when the file declares one (changing a trigger is changing the pipeline);
        a file without ``on:`` has the digest it had before triggers existed."""
        out = {"name": self.name, "concurrency": self.concurrency, "params": dict(sorted(self.params.items())),
               "steps": [s.to_dict() for s in self.steps]}
        if self.on.declared:
            out["on"] = self.on.to_dict()
        return out

    def digest(self) -> str:
        """BLAKE3 (the platform's fingerprint) of the canonical JSON of :meth:`to_dict`."""
        from cairn.core.fingerprint import blake3

        body = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return blake3(body.encode(), device="cpu").hex()


def _plain(value: Any) -> Any:
    """A dataclass as JSON-ready data: expressions as their canonical text, refs as strings."""
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, Ref):
        return str(value)
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in sorted(value.items())}
    if hasattr(value, "__dataclass_fields__") and value.__class__.__module__ == __name__:
        return {name: _plain(getattr(value, name)) for name in value.__dataclass_fields__}
    return to_source(value)
