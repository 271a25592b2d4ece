"""Helpers for the lineage tests: wait for the projection, compare answers as sets of references."""

from __future__ import annotations

import time
from typing import Any

import loopback

from platform_harness import Platform, stream_last_seq


def wait_for_lineage(platform: Platform) -> int:
    """Until the lineage projection has applied everything in the log; returns that sequence."""
    target = stream_last_seq(platform)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        status = loopback.get(f"{platform.gateway}/api/v1/status", headers=platform.headers, timeout=10).json()
        if (status["services"]["lineage"].get("applied_seq") or 0) >= target:
            return target
        time.sleep(0.05)
    raise TimeoutError("the lineage projection did not catch up")


def refs(answer: dict[str, Any]) -> set[str]:
    return {node["ref"] for node in answer["nodes"]}
