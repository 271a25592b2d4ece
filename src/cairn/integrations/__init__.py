"""Framework integrations: explicit callbacks per framework and ``cairn.autolog()``.

Each submodule imports its framework when imported itself (``cairn.integrations.lightning``
imports lightning), and raises :class:`~cairn.kernel.errors.MissingFramework` naming the package
when it is missing; importing this package imports none of them. See docs/integrations.md.
"""

from __future__ import annotations

from typing import Any

__all__ = ["autolog"]


def autolog(*args: Any, **kwargs: Any) -> list[str]:
    """See :func:`cairn.integrations.patching.autolog` (imported on first call)."""
    from cairn.integrations.patching import autolog as _autolog

    return _autolog(*args, **kwargs)
