"""``cairn runs``: the registry's run commands plus the reproducibility ones (diff, environment,
reproduce), put together here because those modules import the registry's (``project_option``)."""

from __future__ import annotations

from cairn.cli.registry import runs
from cairn.cli.reproduce import runs_reproduce
from cairn.cli.reproducibility import runs_diff, runs_environment

runs.add_command(runs_diff)
runs.add_command(runs_environment)
runs.add_command(runs_reproduce)

__all__ = ["runs"]
