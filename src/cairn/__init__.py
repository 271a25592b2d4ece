"""Cairn: an open-source MLOps platform."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["__version__", "fingerprint", "fingerprint_table"]

if TYPE_CHECKING:
    from cairn.core import fingerprint_table
    from cairn.core import fingerprint_tree as fingerprint

# Imported on first use, so that `import cairn` stays light.
_LAZY = {"fingerprint": "fingerprint_tree", "fingerprint_table": "fingerprint_table"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import cairn.core

        return getattr(cairn.core, _LAZY[name])
    raise AttributeError(f"module 'cairn' has no attribute {name!r}")
