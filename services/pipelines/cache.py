"""Step caching: a step whose definition, code, params, inputs and environment match an earlier
successful step is not run again; its outputs are reused and the hit is recorded (``step.cached``).

The key is the BLAKE3 (the platform's fingerprint) of one canonical JSON document holding all of
them, so any change in any of them changes the key, and two runs that agree on all of them agree
on the key whatever order their maps were built in. Pure: no I/O.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cairn.pipelines.spec import Step

# Bumped when what goes into the key changes meaning, so old entries stop matching.
KEY_VERSION = 1


def canonical_json(value: Any) -> bytes:
    """Sorted keys, no spaces, text as UTF-8: the same value always gives the same bytes."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False).encode()


def cache_key(step: Step, code_digest: str | None, params: Mapping[str, Any],
              input_digests: Mapping[str, str], environment_digest: str | None) -> str:
    """The hex BLAKE3 of the step's canonical definition, the code snapshot's digest, the run's
    params, the digests of everything it reads (``input_digests``: input reference or
    ``step:<need>`` -> digest) and the environment's digest."""
    from cairn.core.fingerprint import blake3

    document = {"v": KEY_VERSION, "step": step.to_dict(), "code": code_digest, "params": dict(params),
                "inputs": dict(input_digests), "environment": environment_digest}
    return blake3(canonical_json(document), device="cpu").hex()


@dataclass(frozen=True)
class CacheEntry:
    """What a successful step left for a later run with the same key to reuse."""

    outputs: dict[str, Any]
    metrics: dict[str, Any]
    run_id: str
    step: str


def cache_entries(state: Mapping[str, Any], run_id: str) -> dict[str, CacheEntry]:
    """The entries a run's state offers to later runs: every step that succeeded (a step that was
    itself a cache hit passes its entry on under the same key)."""
    entries: dict[str, CacheEntry] = {}
    for step_id, step in state["steps"].items():
        if step["state"] in ("succeeded", "cached") and step["cache_key"]:
            source = step["source_run"] or run_id
            entries[step["cache_key"]] = CacheEntry(dict(step["outputs"]), dict(step["metrics"]), source, step_id)
    return entries
