"""A run's reproducibility record, as pure domain functions: the environment it ran on, its code
snapshot, its command and its seeds (``run.environment_recorded``).

Rules: environment, code and command are each recorded once per run; recording the same content
again is a no-op, different content is a 409 (a run's record never changes after the fact). Seeds
are recorded key by key, immutable like params, so ``run.set_seed()`` can add one later.
The run's state keeps only a hash per section, so aggregate snapshots stay small.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from cairn.kernel.commands import Decision
from cairn.kernel.errors import Conflict, InvalidInput, NotFound, PayloadTooLarge

SECTIONS = ("environment", "code", "command")
MAX_SEED_KEY = 250
MAX_RECORD_BYTES = 768 * 1024  # an event must fit a NATS message (1 MiB by default) with its envelope


def record_hash(value: Any) -> str:
    """A stable hash of a JSON value (keys sorted), to tell 'the same record again' from a change."""
    return hashlib.sha256(json.dumps(value, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def record_environment(state: dict[str, Any] | None, *, run_id: str, environment: dict[str, Any] | None,
                       code: dict[str, Any] | None, command: list[str] | None,
                       seeds: dict[str, int | str] | None) -> Decision:
    """Record what is new in a run's reproducibility record; 409 if it contradicts what is there."""
    if state is None:
        raise NotFound(f"run {run_id!r} does not exist")
    if environment is None and code is None and command is None and not seeds:
        raise InvalidInput("send at least one of environment, code, command or seeds")
    known = state.get("record") or {}
    data: dict[str, Any] = {}
    for section, value in (("environment", environment), ("code", code), ("command", command)):
        if value is None:
            continue
        if section in known:
            if known[section] != record_hash(value):
                raise Conflict(f"run {run_id!r} already has a recorded {section}; a run's record is written "
                               f"once and never changes (start a new run to record a different {section})",
                               details={"field": section})
            continue
        data[section] = value
    known_seeds = known.get("seeds") or {}
    for key, seed in sorted((seeds or {}).items()):
        if not 1 <= len(key) <= MAX_SEED_KEY or (isinstance(seed, str) and len(seed) > MAX_SEED_KEY):
            raise InvalidInput(f"seed names and string seeds must be 1-{MAX_SEED_KEY} characters",
                               details={"field": "seeds"})
        if key in known_seeds and known_seeds[key] != seed:
            raise Conflict(f"seed {key!r} of run {run_id!r} is already {known_seeds[key]!r}; seeds are immutable "
                           f"(cannot set it to {seed!r})", details={"field": f"seeds.{key}"})
        if key not in known_seeds:
            data.setdefault("seeds", {})[key] = seed
    if not data:
        return None
    size = len(json.dumps(data, separators=(",", ":")).encode())
    if size > MAX_RECORD_BYTES:
        raise PayloadTooLarge(f"the record is {size} bytes, over {MAX_RECORD_BYTES}; leave the inline git diff "
                              "out of the code record (the code archive keeps it) or trim the package list",
                              details={"limit": MAX_RECORD_BYTES})
    return "run.environment_recorded", data


def evolve_record(state: dict[str, Any], data: dict[str, Any]) -> None:
    """Fold ``run.environment_recorded`` into a run's state (hashes per section, seeds as they are)."""
    record = state.setdefault("record", {})
    for section in SECTIONS:
        if section in data:
            record[section] = record_hash(data[section])
    if data.get("seeds"):
        record.setdefault("seeds", {}).update(data["seeds"])
