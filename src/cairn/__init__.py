"""Cairn: an open-source MLOps platform.

    import cairn
    with cairn.start_run(project="vision", experiment="baseline", params={"lr": 0.01}) as run:
        run.set_tag("team", "perception")
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["ActiveRun", "ApiError", "Client", "__version__", "autolog", "fingerprint", "fingerprint_table",
           "start_run"]

if TYPE_CHECKING:
    from cairn.core import fingerprint_table
    from cairn.core import fingerprint_tree as fingerprint
    from cairn.integrations import autolog
    from cairn.sdk import ActiveRun, ApiError, Client, start_run

# Imported on first use, so that `import cairn` (and the CLI's start) stays light.
_LAZY = {"fingerprint": "fingerprint_tree", "fingerprint_table": "fingerprint_table"}
_SDK = {"ActiveRun", "ApiError", "Client", "start_run"}


def __getattr__(name: str) -> Any:
    if name in _SDK:
        import cairn.sdk

        return getattr(cairn.sdk, name)
    if name == "autolog":  # frameworks are imported only when autolog() runs
        from cairn.integrations import autolog

        return autolog
    if name in _LAZY:
        import cairn.core

        return getattr(cairn.core, _LAZY[name])
    raise AttributeError(f"module 'cairn' has no attribute {name!r}")
