"""``cairn.start_run``: a run as a context manager that records how it ended."""

from __future__ import annotations

import os
import tempfile
from types import TracebackType
from typing import TYPE_CHECKING, Any

from cairn.sdk.client import Client
from cairn.sdk.metrics import MetricsLogger
from cairn.sdk.reproducibility import (
    first_record,
    seed_everything,
    setup_reproducibility,
    snapshot_for_start,
    upload_code,
)
from cairn.sdk.system_metrics import SystemMetricsSampler, enabled_by_default

if TYPE_CHECKING:
    from cairn.sdk.notebook_display import RunDisplay

# Where MLflow (and so the web UI) keeps a run's notes.
NOTES_TAG = "mlflow.note.content"


class ActiveRun:
    """A run in progress. Leaving the ``with`` block finishes it (``failed`` on an exception)."""

    def __init__(self, client: Client, project: str, record: dict[str, Any], *, owns_client: bool,
                 attached: bool = False) -> None:
        self.client = client
        self.attached = attached  # a job's run: the scheduler finishes it when the job ends
        self.project = project
        self.record = record
        self._owns_client = owns_client
        self._metrics: MetricsLogger | None = None
        self._system: SystemMetricsSampler | None = None
        self._view: RunDisplay | None = None  # run.display()'s live view

    def start_system_metrics(self, interval_s: float | None = None) -> None:
        """Sample CPU, memory, I/O and GPUs as ``system/*`` metrics (no-op without psutil)."""
        if self._system is None:
            try:
                self._system = SystemMetricsSampler(self.metrics, interval_s)
            except ImportError:
                pass

    @property
    def id(self) -> str:
        return str(self.record["id"])

    def log_param(self, key: str, value: Any) -> None:
        self.log_params({key: value})

    def log_params(self, params: dict[str, Any]) -> None:
        """Log params; params are immutable, so a different value for a logged key is an error."""
        self.record = self.client.log_params(self.project, self.id, params)

    @property
    def metrics(self) -> MetricsLogger:
        """The run's background metric sender (started on first use)."""
        if self._metrics is None:
            self._metrics = MetricsLogger(self.client.url, self.client.token, self.project, self.id,
                                          on_sequence=self.client.saw_metrics_seq)
        return self._metrics

    def log_metric(self, key: str, value: float, step: int | None = None, timestamp: float | None = None) -> None:
        """Queue a point; returns at once (sent in the background, see cairn.sdk.metrics)."""
        self.metrics.log(key, value, step, timestamp)
        if self._view is not None:
            self._view.observe({key: value}, step)

    def log_metrics(self, values: dict[str, float], step: int | None = None, timestamp: float | None = None) -> None:
        """Queue one point per key at ``step``; returns at once."""
        self.metrics.log_many(values, step, timestamp)
        if self._view is not None:
            self._view.observe(values, step)

    def flush(self, timeout: float | None = 60.0) -> bool:
        """Wait until every logged point was accepted by the platform."""
        return self._metrics.flush(timeout) if self._metrics is not None else True

    def set_tag(self, key: str, value: str) -> None:
        self.record = self.client.set_run_tag(self.project, self.id, key, str(value))

    def set_notes(self, text: str) -> None:
        """The run's notes: the tag MLflow keeps them in, so MLflow clients and the web UI's run
        page show the same text (the run's ``description`` is a separate field)."""
        self.set_tag(NOTES_TAG, text)

    def use_dataset(self, ref: str) -> dict[str, Any]:
        """Declare a dataset version (``"mnist@v3"``, or ``"mnist"`` for the latest) as an input;
        recorded as a ``run.dataset_used`` event. Returns the resolved version."""
        return self.client.artifacts.use_dataset(self.project, self.id, ref)

    def log_artifact(self, path: str | os.PathLike[str], name: str | None = None,
                     kind: str | None = None) -> dict[str, Any]:
        """Upload a file or directory (only blobs the store lacks) and record it on the run
        under ``name`` (default: the base name); ``kind`` is file, directory or model."""
        return self.client.artifacts.log_artifact(self.project, self.id, path, name, kind)

    def log_model(self, model: Any, name: str, flavour: str | None = None,
                  signature: list[dict[str, str]] | None = None, input_example: Any = None,
                  batchable: bool = True) -> dict[str, Any]:
        """Package ``model`` (an object or a model file/MLflow dir) with a ``cairn-model.json``
        descriptor, upload it and register it as a new version of model ``name`` from this run;
        returns the version record (servable with ``cairn serve -p P name/VERSION``)."""
        return self.client.log_model(self.project, self.id, model, name, flavour=flavour, signature=signature,
                                     input_example=input_example, batchable=batchable)

    # --- rich media (cairn.sdk.media, docs/media.md): PNG / Parquet / HTML / text blobs by key and step

    def _media(self) -> Any:
        from cairn.sdk.media import Media

        return Media(self.client, self.project, self.id)

    def log_image(self, key: str, image: Any, step: int | None = None) -> dict[str, Any]:
        """A numpy array (HxW, HxWx3/4; uint8, or float 0..1), PIL image or image file, as PNG
        with a thumbnail; ``step`` omitted: the key's next step."""
        return self._media().log_image(key, image, step)

    def log_figure(self, key: str, fig: Any, step: int | None = None) -> dict[str, Any]:
        """A matplotlib figure (PNG) or plotly figure (HTML; a PNG thumbnail only with kaleido)."""
        return self._media().log_figure(key, fig, step)

    def log_table(self, key: str, table: Any, step: int | None = None) -> dict[str, Any]:
        """A pandas DataFrame or pyarrow Table, stored as Parquet."""
        return self._media().log_table(key, table, step)

    def log_text(self, key: str, text: str, step: int | None = None) -> dict[str, Any]:
        return self._media().log_text(key, text, step)

    def log_html(self, key: str, html: str, step: int | None = None) -> dict[str, Any]:
        """HTML, shown by the web UI only inside a sandboxed frame."""
        return self._media().log_html(key, html, step)

    def set_seed(self, seed: int, name: str = "seed", *, apply: bool = True) -> list[str]:
        """Record a seed on the run (immutable once recorded, like params) and, with ``apply``, seed
        random, numpy and torch (when imported) with it. Returns what was seeded."""
        seeded = seed_everything(seed) if apply else []
        self.client.record_run_environment(self.project, self.id, seeds={name: seed})
        return seeded

    def display(self, total: int | None = None, every_s: float = 0.5) -> RunDisplay:
        """A live view of this run's progress (of ``total`` steps) and latest metrics: updated in
        place in a notebook, a text line per refresh elsewhere (docs/notebooks.md)."""
        from cairn.sdk.notebook_display import RunDisplay

        self._view = RunDisplay(self.id, self.record.get("name"), total=total, every_s=every_s)
        return self._view

    def refresh(self) -> dict[str, Any]:
        self.record = self.client.get_run(self.project, self.id)
        return self.record

    def finish(self, status: str = "finished", message: str = "") -> None:
        self.record = self.client.finish_run(self.project, self.id, status, message)
        if self._view is not None:
            self._view.finish(status)

    def __enter__(self) -> "ActiveRun":
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        try:
            if self._system is not None:
                self._system.stop()
            if self._metrics is not None:
                self._metrics.close()
            if self.attached:
                if exc_type is not None:  # the job's exit status tells the scheduler; say why here
                    self.client.set_run_tag(self.project, self.id, "cairn.error",
                                            f"{exc_type.__name__}: {exc}"[:8000])
            elif exc_type is None:
                self.finish("finished")
            elif issubclass(exc_type, KeyboardInterrupt):
                self.finish("killed", "interrupted")
            else:
                self.finish("failed", f"{exc_type.__name__}: {exc}"[:8000])
        finally:
            if self._owns_client:
                self.client.close()


def start_run(project: str | None = None, experiment: str = "default", *, name: str | None = None,
              params: dict[str, Any] | None = None, tags: dict[str, str] | None = None,
              description: str = "", client: Client | None = None, url: str | None = None,
              system_metrics: bool | None = None, system_metrics_interval_s: float | None = None,
              record_environment: bool | None = None, seed: int | None = None,
              notebook_outputs: bool | None = None) -> ActiveRun:
    """Start a run (creating the project, which makes you its admin, and the experiment if they do
    not exist yet), with its record, in one request and one event. System metrics
    are sampled unless ``system_metrics=False`` or ``CAIRN_SYSTEM_METRICS=0``. The environment, code
    snapshot, command and seeds are recorded unless ``record_environment=False`` or
    ``CAIRN_RECORD_ENVIRONMENT=0``; ``seed`` seeds random/numpy/torch and is recorded. In Jupyter
    or IPython the code is the notebook, outputs stripped unless ``notebook_outputs`` (docs/notebooks.md).

    Inside a job (``CAIRN_RUN_ID`` and ``CAIRN_PROJECT`` set by the agent, and ``project`` is the
    job's project or omitted) this attaches to the job's run instead of creating one: params and
    tags are added to it, the job's ``CAIRN_SEED`` is the default seed, and the scheduler finishes
    the run when the job ends."""
    owns = client is None
    client = client or Client(url)
    job_project, job_run = os.environ.get("CAIRN_PROJECT"), os.environ.get("CAIRN_RUN_ID")
    if job_run and job_project and project in (None, job_project):
        record = client.get_run(job_project, job_run)
        run = ActiveRun(client, job_project, record, owns_client=owns, attached=True)
        if params:
            run.log_params(params)
        for key, value in (tags or {}).items():
            run.set_tag(key, value)
        job_seed = os.environ.get("CAIRN_SEED", "")
        if seed is None and job_seed.lstrip("-").isdigit():
            seed = int(job_seed)
        setup_reproducibility(run, record=record_environment, seed=seed)
        if enabled_by_default() if system_metrics is None else system_metrics:
            run.start_system_metrics(system_metrics_interval_s)
        return run
    if project is None:
        raise ValueError("start_run needs a project (or run inside a Cairn job)")
    with tempfile.TemporaryDirectory(prefix="cairn-code-") as tmp:
        code = snapshot_for_start(tmp, record=record_environment, notebook_outputs=notebook_outputs)
        first = first_record(record=record_environment, seed=seed, code=code)
        record = client.start_new_run(project, experiment=experiment, name=name, params=params, tags=tags,
                                      description=description, record=first)
        if code is not None:  # the archive goes into the project, which exists from the request above
            upload_code(client, project, record["id"], code)
    run = ActiveRun(client, project, record, owns_client=owns)
    if enabled_by_default() if system_metrics is None else system_metrics:
        run.start_system_metrics(system_metrics_interval_s)
    return run
