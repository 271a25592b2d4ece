"""The Python SDK: ``cairn.Client`` and ``cairn.start_run``."""

from cairn.sdk.client import ApiError, CannotReach, Client
from cairn.sdk.run import ActiveRun, start_run

__all__ = ["ActiveRun", "ApiError", "CannotReach", "Client", "start_run"]
