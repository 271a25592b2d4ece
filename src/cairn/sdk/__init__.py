"""The Python SDK: ``cairn.Client`` and ``cairn.start_run``."""

from cairn.sdk.client import ApiError, Client
from cairn.sdk.run import ActiveRun, start_run

__all__ = ["ActiveRun", "ApiError", "Client", "start_run"]
