"""``cairn.start_run``: a run as a context manager that records how it ended."""

from __future__ import annotations

import os
from types import TracebackType
from typing import Any

from cairn.sdk.client import Client


class ActiveRun:
    """A run in progress. Leaving the ``with`` block finishes it (``failed`` on an exception)."""

    def __init__(self, client: Client, project: str, record: dict[str, Any], *, owns_client: bool) -> None:
        self.client = client
        self.project = project
        self.record = record
        self._owns_client = owns_client

    @property
    def id(self) -> str:
        return str(self.record["id"])

    def log_param(self, key: str, value: Any) -> None:
        self.log_params({key: value})

    def log_params(self, params: dict[str, Any]) -> None:
        """Log params; params are immutable, so a different value for a logged key is an error."""
        self.record = self.client.log_params(self.project, self.id, params)

    def set_tag(self, key: str, value: str) -> None:
        self.record = self.client.set_run_tag(self.project, self.id, key, str(value))

    def set_notes(self, text: str) -> None:
        self.record = self.client.update_run(self.project, self.id, description=text)

    def use_dataset(self, ref: str) -> dict[str, Any]:
        """Declare a dataset version (``"mnist@v3"``, or ``"mnist"`` for the latest) as an input;
        recorded as a ``run.dataset_used`` event. Returns the resolved version."""
        return self.client.artifacts.use_dataset(self.project, self.id, ref)

    def log_artifact(self, path: str | os.PathLike[str], name: str | None = None,
                     kind: str | None = None) -> dict[str, Any]:
        """Upload a file or directory (only blobs the store lacks) and record it on the run
        under ``name`` (default: the base name); ``kind`` is file, directory or model."""
        return self.client.artifacts.log_artifact(self.project, self.id, path, name, kind)

    def refresh(self) -> dict[str, Any]:
        self.record = self.client.get_run(self.project, self.id)
        return self.record

    def finish(self, status: str = "finished", message: str = "") -> None:
        self.record = self.client.finish_run(self.project, self.id, status, message)

    def __enter__(self) -> "ActiveRun":
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        try:
            if exc_type is None:
                self.finish("finished")
            elif issubclass(exc_type, KeyboardInterrupt):
                self.finish("killed", "interrupted")
            else:
                self.finish("failed", f"{exc_type.__name__}: {exc}"[:8000])
        finally:
            if self._owns_client:
                self.client.close()


def start_run(project: str, experiment: str = "default", *, name: str | None = None,
              params: dict[str, Any] | None = None, tags: dict[str, str] | None = None,
              description: str = "", client: Client | None = None, url: str | None = None) -> ActiveRun:
    """Start a run (creating the project and experiment if they do not exist yet)."""
    owns = client is None
    client = client or Client(url)
    client.ensure_project(project)
    client.ensure_experiment(project, experiment)
    record = client.create_run(project, experiment=experiment, name=name, params=params, tags=tags,
                               description=description)
    return ActiveRun(client, project, record, owns_client=owns)
