"""Cairn: an open-source MLOps platform.

    import cairn
    with cairn.start_run(project="vision", experiment="baseline", params={"lr": 0.01}) as run:
        run.set_tag("team", "perception")
"""

from __future__ import annotations

from typing import Any

from cairn.sdk import ActiveRun, ApiError, Client, start_run

__version__ = "0.1.0"
__all__ = ["ActiveRun", "ApiError", "Client", "__version__", "start_run"]


def __getattr__(name: str) -> Any:
    # The core extension loads only when a fingerprint function is first used.
    if name in ("fingerprint", "fingerprint_table"):
        from cairn import core

        return getattr(core, name)
    raise AttributeError(f"module 'cairn' has no attribute {name!r}")
