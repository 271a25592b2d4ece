"""HTTP client for the gateway. Mutations carry an Idempotency-Key and are retried on transient
failures (connection errors, 502, 503, 504) with the same key, so a retry never applies twice.
A 429 (rate limit) is retried after the wait the gateway names (``Retry-After``, plus jitter; see
:mod:`cairn.sdk.retry`), within the same bounded number of tries.

A gateway that was never reached (connection refused, unknown host) fails at once with
:class:`CannotReach`: retrying a ``cairn up`` that is not running only hides the cause for seconds.
Once the client has had an answer, connection errors are retried about 3 s (5 tries, 0.1 s doubling),
which outlasts a gateway restart, then raise :class:`CannotReach` too."""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import httpx

from cairn.protocol import (
    H_CAIRN_METRICS_SEQ,
    H_CAIRN_MIN_METRICS_SEQ,
    H_CAIRN_MIN_SEQ,
    H_CAIRN_SEQ,
)
from cairn.sdk.jobs import JobsMixin
from cairn.sdk.metrics import MetricsQueries
from cairn.sdk.monitor import MonitorMixin
from cairn.sdk.pipelines import PipelinesMixin
from cairn.sdk.retry import wait_for
from cairn.sdk.tls import tls_context

if TYPE_CHECKING:
    from cairn.sdk.artifacts import Artifacts

DEFAULT_URL = "http://127.0.0.1:8080"
METRICS_PATH = "/api/v1/metrics/"  # requests that name Cairn-Min-Metrics-Seq
RETRY_STATUSES = {429, 502, 503, 504}


class ApiError(Exception):
    """An error answer from the API, with its status, code and message."""

    def __init__(self, status: int, code: str, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.details = details or {}


class CannotReach(ApiError):
    """No answer from the gateway at all (refused, unknown host, timed out): status 0, and one line
    that says what to do, without the transport's exception chain."""

    def __init__(self, url: str, reason: str) -> None:
        message = f"cannot reach Cairn at {url}: {reason}; is `cairn up` running? try `cairn status`"
        super().__init__(0, "unreachable", message)
        self.args = (message,)
        self.url = url
        self.reason = reason

    def __str__(self) -> str:
        return self.message


@contextmanager
def reaching(url: str) -> Iterator[None]:
    """Around a call that talks to httpx without :meth:`Client.request` (streams, text answers,
    blob bytes): a transport error is the same one-line :class:`CannotReach`."""
    try:
        yield
    except httpx.TransportError as err:
        raise CannotReach(url, _reason(err)) from None


def _reason(err: httpx.TransportError) -> str:
    """The innermost cause in words ("[Errno 111] Connection refused"), not httpx's class name."""
    cause: BaseException = err
    while cause.__context__ is not None and isinstance(cause.__context__, OSError):
        cause = cause.__context__
    text = str(cause) or str(err) or type(err).__name__
    if isinstance(err, httpx.TimeoutException):
        return f"timed out ({text})" if "timed out" not in text.lower() else text
    return text


def _default_token() -> tuple[str | None, list[str]]:
    """The token from ``$CAIRN_TOKEN`` or the data dir's ``admin.token``, and where we looked (so a
    401 can say which places were empty, e.g. after ``cairn up --data-dir X``)."""
    token = os.environ.get("CAIRN_TOKEN")
    if token:
        return token, ["$CAIRN_TOKEN"]
    data_dir = Path(os.environ.get("CAIRN_DATA_DIR", Path.home() / ".cairn"))
    token_file = data_dir / "admin.token"
    looked = ["$CAIRN_TOKEN (unset)"]
    try:
        return token_file.read_text().strip() or None, [*looked, f"{token_file} (empty)"]
    except OSError as err:
        return None, [*looked, f"{token_file} ({err.strerror or 'unreadable'}; set $CAIRN_DATA_DIR "
                                 "to the directory `cairn up --data-dir` used)"]


def _q(part: str) -> str:
    return quote(part, safe="")


class AccessMixin:
    """Tokens, members, audit and webhooks (gateway routes)."""

    request: Any

    def whoami(self) -> dict[str, Any]:
        return self.request("GET", "/api/v1/whoami")

    def create_token(self, user: str | None = None, *, kind: str = "user", site_admin: bool = False,
                     expires_in_days: float | None = None, description: str = "") -> dict[str, Any]:
        body = {"user": user, "kind": kind, "site_admin": site_admin, "expires_in_days": expires_in_days,
                "description": description}
        return self.request("POST", "/api/v1/tokens", json={k: v for k, v in body.items() if v is not None})

    def list_tokens(self, user: str | None = None) -> list[dict[str, Any]]:
        return self.request("GET", "/api/v1/tokens", params={"user": user} if user else None)["tokens"]

    def revoke_token(self, token_id: str) -> dict[str, Any]:
        return self.request("DELETE", f"/api/v1/tokens/{_q(token_id)}")

    def add_member(self, project: str, user: str, role: str) -> list[dict[str, Any]]:
        return self.request("POST", f"/api/v1/projects/{_q(project)}/members",
                            json={"user": user, "role": role})["members"]

    def remove_member(self, project: str, user: str) -> list[dict[str, Any]]:
        return self.request("DELETE", f"/api/v1/projects/{_q(project)}/members/{_q(user)}")["members"]

    def list_members(self, project: str) -> list[dict[str, Any]]:
        return self.request("GET", f"/api/v1/projects/{_q(project)}/members")["members"]

    def audit(self, *, project: str | None = None, actor: str | None = None, types: str | None = None,
              since: str | None = None, cursor: int = 0, limit: int = 100) -> dict[str, Any]:
        params = {"project": project, "actor": actor, "type": types, "since": since, "cursor": cursor, "limit": limit}
        return self.request("GET", "/api/v1/audit", params={k: v for k, v in params.items() if v is not None})

    def create_webhook(self, project: str, url: str, types: list[str]) -> dict[str, Any]:
        return self.request("POST", f"/api/v1/projects/{_q(project)}/webhooks", json={"url": url, "types": types})

    def list_webhooks(self, project: str) -> list[dict[str, Any]]:
        return self.request("GET", f"/api/v1/projects/{_q(project)}/webhooks")["webhooks"]

    def delete_webhook(self, project: str, webhook_id: str) -> None:
        self.request("DELETE", f"/api/v1/projects/{_q(project)}/webhooks/{_q(webhook_id)}")

    def dead_letters(self, project: str, webhook_id: str) -> list[dict[str, Any]]:
        return self.request("GET", f"/api/v1/projects/{_q(project)}/webhooks/{_q(webhook_id)}/dead-letters")[
            "dead_letters"]

    def replay_webhook(self, project: str, webhook_id: str) -> dict[str, Any]:
        return self.request("POST", f"/api/v1/projects/{_q(project)}/webhooks/{_q(webhook_id)}/replay")


class Client(AccessMixin, MetricsQueries, JobsMixin, MonitorMixin, PipelinesMixin):
    """``Client(url, token=None)``: talk to a Cairn gateway (default ``$CAIRN_URL`` or :8080).

    Read-your-writes (``read_your_writes=True``, the default): the client remembers the highest
    ``Cairn-Seq`` a write's answer named (``last_seq``) and sends it as ``Cairn-Min-Seq`` on every
    later request, so whichever replica of a service answers has applied the client's own writes
    first; the same for metric points with the metrics stream's sequence (``last_metrics_seq``,
    ``Cairn-Metrics-Seq`` / ``Cairn-Min-Metrics-Seq``, from the batches its runs' metric loggers
    sent). Turn it off for a client that only reads and would rather not wait."""

    def __init__(self, url: str | None = None, token: str | None = None, *, timeout: float = 30.0,
                 retries: int = 5, read_your_writes: bool = True) -> None:
        self.url = (url or os.environ.get("CAIRN_URL") or DEFAULT_URL).rstrip("/")
        self.token_looked = ["the token argument (--token)"]
        if token is None:
            token, looked = _default_token()
            self.token_looked = ["--token (not given)", *looked]
        self.token = token
        self.retries = retries
        self._answered = False  # any answer yet? until then a refused connection fails at once
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        self.read_your_writes = read_your_writes
        self.last_seq = 0  # the highest event-log sequence a write's answer named
        self.last_metrics_seq = 0  # the highest metrics-stream sequence a batch's answer named
        self._seq_lock = threading.Lock()
        # hooks, not code in request(): streams, uploads and the mixins' own calls go through them too
        self._http = httpx.Client(base_url=self.url, timeout=timeout, headers=headers, verify=tls_context(),
                                  event_hooks={"request": [self._name_last_seq], "response": [self._note_seq]})

    def _name_last_seq(self, request: httpx.Request) -> None:
        if self.read_your_writes and self.last_seq:
            request.headers[H_CAIRN_MIN_SEQ] = str(self.last_seq)
        if self.read_your_writes and self.last_metrics_seq and METRICS_PATH in request.url.path:
            request.headers[H_CAIRN_MIN_METRICS_SEQ] = str(self.last_metrics_seq)

    def _note_seq(self, response: httpx.Response) -> None:
        written = response.headers.get(H_CAIRN_SEQ, "")
        if written.isdigit():
            self.last_seq = max(self.last_seq, int(written))
        points = response.headers.get(H_CAIRN_METRICS_SEQ, "")
        if points.isdigit():
            self.saw_metrics_seq(int(points))

    def saw_metrics_seq(self, sequence: int) -> None:
        """A metric batch was accepted at ``sequence`` of the metrics stream (called by metric
        loggers from their sending threads)."""
        with self._seq_lock:
            self.last_metrics_seq = max(self.last_metrics_seq, sequence)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- transport -----------------------------------------------------------------------------

    def request(self, method: str, path: str, *, json: Any = None, params: dict[str, Any] | None = None,
                idempotency_key: str | None = None) -> Any:
        """Send a request; mutations get an Idempotency-Key and are retried on transient errors."""
        headers = {}
        if method != "GET":
            headers["Idempotency-Key"] = idempotency_key or uuid.uuid4().hex
        delay = 0.1
        for attempt in range(self.retries + 1):
            resp: httpx.Response | None = None
            try:
                resp = self._http.request(method, path, json=json, params=params, headers=headers)
            except httpx.TransportError as err:
                never_answered = not self._answered and isinstance(err, httpx.ConnectError)
                if attempt == self.retries or never_answered:
                    raise CannotReach(self.url, _reason(err)) from None
            else:
                self._answered = True
                if resp.status_code not in RETRY_STATUSES or attempt == self.retries:
                    return self._answer(resp)
            wait = wait_for(resp, delay)
            if wait is None:  # a 429 asking for longer than we wait: the caller decides
                assert resp is not None  # only an answer can ask for a wait
                return self._answer(resp)
            time.sleep(wait)
            delay = min(delay * 2, 2.0)
        raise AssertionError("unreachable")

    @staticmethod
    def _answer(resp: httpx.Response) -> Any:
        if resp.status_code >= 400:
            try:
                err = resp.json()["error"]
                raise ApiError(resp.status_code, err.get("code", "error"), err.get("message", ""),
                               err.get("details"))
            except (ValueError, KeyError, TypeError):
                raise ApiError(resp.status_code, "error", resp.text[:500]) from None
        if resp.status_code == 204 or not resp.content:
            return None
        return resp.json()

    def _reg(self, method: str, path: str, **kwargs: Any) -> Any:
        return self.request(method, f"/api/v1/registry{path}", **kwargs)

    @property
    def artifacts(self) -> "Artifacts":
        """Blobs, datasets and run artifacts (see :mod:`cairn.sdk.artifacts`)."""
        from cairn.sdk.artifacts import Artifacts

        return Artifacts(self)

    # --- platform ------------------------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        try:
            resp = self._http.get("/healthz")
        except httpx.TransportError as err:
            raise CannotReach(self.url, _reason(err)) from None
        return resp.json()

    def status(self) -> dict[str, Any]:
        return self.request("GET", "/api/v1/status")

    def rebuild(self, service: str) -> dict[str, Any]:
        return self.request("POST", f"/api/v1/{_q(service)}/admin/rebuild")

    def parked(self, service: str) -> dict[str, Any]:
        """The events a service's projection parked (it could not apply them)."""
        return self.request("GET", f"/api/v1/{_q(service)}/admin/parked")

    def retry_parked(self, service: str, sequence: int) -> dict[str, Any]:
        return self.request("POST", f"/api/v1/{_q(service)}/admin/parked/{int(sequence)}/retry")

    def skip_parked(self, service: str, sequence: int) -> dict[str, Any]:
        return self.request("POST", f"/api/v1/{_q(service)}/admin/parked/{int(sequence)}/skip")

    def events(self, *, project: str | None = None, types: str | None = None,
               since: int | None = None, timeout: float | None = None) -> Iterator[dict[str, Any]]:
        """Yield events live from the gateway's event stream (server-sent events)."""
        import json as jsonlib

        params = {k: v for k, v in {"project": project, "types": types, "since": since}.items() if v is not None}
        try:
            with self._http.stream("GET", "/api/v1/events/stream", params=params,
                                   timeout=httpx.Timeout(timeout or 30.0, read=timeout)) as resp:
                if resp.status_code >= 400:
                    resp.read()
                    self._answer(resp)
                for line in resp.iter_lines():
                    if line.startswith("data: "):
                        yield jsonlib.loads(line[6:])
        except httpx.TransportError as err:
            raise CannotReach(self.url, _reason(err)) from None

    # --- projects and experiments ----------------------------------------------------------------

    def create_project(self, name: str, description: str = "") -> dict[str, Any]:
        return self._reg("POST", "/projects", json={"name": name, "description": description})

    def get_project(self, name: str) -> dict[str, Any]:
        return self._reg("GET", f"/projects/{_q(name)}")

    def list_projects(self, include_archived: bool = False) -> list[dict[str, Any]]:
        return self._reg("GET", "/projects", params={"include_archived": include_archived})["projects"]

    def ensure_project(self, name: str) -> dict[str, Any]:
        try:
            return self.get_project(name)
        except ApiError as err:
            if err.status != 404:
                raise
        try:
            return self.create_project(name)
        except ApiError as err:
            if err.status != 409:
                raise
            return self.get_project(name)

    def create_experiment(self, project: str, name: str, description: str = "") -> dict[str, Any]:
        return self._reg("POST", f"/projects/{_q(project)}/experiments",
                         json={"name": name, "description": description})

    def list_experiments(self, project: str, include_archived: bool = False) -> list[dict[str, Any]]:
        return self._reg("GET", f"/projects/{_q(project)}/experiments",
                         params={"include_archived": include_archived})["experiments"]

    def get_experiment_by_name(self, project: str, name: str) -> dict[str, Any] | None:
        found = self._reg("GET", f"/projects/{_q(project)}/experiments", params={"name": name})["experiments"]
        return found[0] if found else None

    def ensure_experiment(self, project: str, name: str) -> dict[str, Any]:
        found = self.get_experiment_by_name(project, name)
        if found is not None:
            return found
        try:
            return self.create_experiment(project, name)
        except ApiError as err:
            if err.status != 409:
                raise
            found = self.get_experiment_by_name(project, name)
            assert found is not None
            return found

    # --- runs ----------------------------------------------------------------------------------

    def create_run(self, project: str, *, experiment: str | None = None, experiment_id: str | None = None,
                   name: str | None = None, params: dict[str, Any] | None = None,
                   tags: dict[str, str] | None = None, description: str = "", start: bool = True) -> dict[str, Any]:
        body = {"experiment": experiment, "experiment_id": experiment_id, "name": name,
                "params": params or {}, "tags": tags or {}, "description": description, "start": start}
        return self._reg("POST", f"/projects/{_q(project)}/runs", json={k: v for k, v in body.items() if v is not None})

    def start_new_run(self, project: str, *, experiment: str = "default", name: str | None = None,
                      params: dict[str, Any] | None = None, tags: dict[str, str] | None = None,
                      description: str = "", record: dict[str, Any] | None = None,
                      idempotency_key: str | None = None) -> dict[str, Any]:
        """One request: create ``project`` (you become its admin) and ``experiment`` when absent,
        then the run with its reproducibility ``record`` (``environment``, ``code``, ``command``,
        ``seeds``) in one event. A retry (same Idempotency-Key) answers the same run."""
        body = {"experiment": experiment, "name": name, "params": params or {}, "tags": tags or {},
                "description": description, "record": record or None}
        return self._reg("POST", f"/projects/{_q(project)}/runs/start",
                         json={k: v for k, v in body.items() if v is not None}, idempotency_key=idempotency_key)

    def get_run(self, project: str, run_id: str) -> dict[str, Any]:
        return self._reg("GET", f"/projects/{_q(project)}/runs/{_q(run_id)}")

    def search_runs(self, project: str, *, filter: str | None = None, experiment_ids: list[str] | None = None,
                    order_by: list[str] | None = None, page_size: int = 100, page_token: str | None = None,
                    include_archived: bool = False) -> dict[str, Any]:
        body = {"filter": filter, "experiment_ids": experiment_ids, "order_by": order_by, "page_size": page_size,
                "page_token": page_token, "include_archived": include_archived}
        return self._reg("POST", f"/projects/{_q(project)}/runs/search",
                         json={k: v for k, v in body.items() if v is not None})

    def log_params(self, project: str, run_id: str, params: dict[str, Any]) -> dict[str, Any]:
        return self._reg("POST", f"/projects/{_q(project)}/runs/{_q(run_id)}/params", json={"params": params})

    def set_run_tag(self, project: str, run_id: str, key: str, value: str) -> dict[str, Any]:
        return self._reg("PUT", f"/projects/{_q(project)}/runs/{_q(run_id)}/tags/{_q(key)}", json={"value": value})

    def delete_run_tag(self, project: str, run_id: str, key: str) -> dict[str, Any]:
        return self._reg("DELETE", f"/projects/{_q(project)}/runs/{_q(run_id)}/tags/{_q(key)}")

    def update_run(self, project: str, run_id: str, *, name: str | None = None,
                   description: str | None = None) -> dict[str, Any]:
        body = {k: v for k, v in {"name": name, "description": description}.items() if v is not None}
        return self._reg("PATCH", f"/projects/{_q(project)}/runs/{_q(run_id)}", json=body)

    def finish_run(self, project: str, run_id: str, status: str = "finished", message: str = "") -> dict[str, Any]:
        return self._reg("POST", f"/projects/{_q(project)}/runs/{_q(run_id)}/finish",
                         json={"status": status, "message": message})

    def record_run_environment(self, project: str, run_id: str, *, environment: dict[str, Any] | None = None,
                               code: dict[str, Any] | None = None, command: list[str] | None = None,
                               seeds: dict[str, Any] | None = None) -> dict[str, Any]:
        """Record a run's environment, code snapshot record, command and seeds (see docs/reproducibility.md)."""
        body = {"environment": environment, "code": code, "command": command, "seeds": seeds}
        return self._reg("PUT", f"/projects/{_q(project)}/runs/{_q(run_id)}/environment",
                         json={k: v for k, v in body.items() if v is not None})

    def get_run_environment(self, project: str, run_id: str) -> dict[str, Any]:
        """A run's reproducibility record (404 ApiError when none was recorded)."""
        return self._reg("GET", f"/projects/{_q(project)}/runs/{_q(run_id)}/environment")

    def diff_runs(self, a: str, b: str, *, tolerance: float = 0.0, relative: bool = False,
                  system_metrics: bool = False) -> dict[str, Any]:
        """What differs between two runs (by id, any of your projects); see cairn.sdk.run_diff."""
        return self._reg("GET", "/runs/diff", params={"a": a, "b": b, "tolerance": tolerance,
                                                      "relative": str(relative).lower(),
                                                      "system_metrics": str(system_metrics).lower()})

    # --- models --------------------------------------------------------------------------------

    def create_model(self, project: str, name: str, description: str = "") -> dict[str, Any]:
        return self._reg("POST", f"/projects/{_q(project)}/models", json={"name": name, "description": description})

    def get_model(self, project: str, name: str) -> dict[str, Any]:
        return self._reg("GET", f"/projects/{_q(project)}/models/{_q(name)}")

    def list_models(self, project: str) -> list[dict[str, Any]]:
        return self._reg("GET", f"/projects/{_q(project)}/models")["models"]

    def create_model_version(self, project: str, model: str, *, run_id: str, artifact_digest: str,
                             description: str = "") -> dict[str, Any]:
        return self._reg("POST", f"/projects/{_q(project)}/models/{_q(model)}/versions",
                         json={"run_id": run_id, "artifact_digest": artifact_digest, "description": description})

    def set_alias(self, project: str, model: str, alias: str, version: int) -> dict[str, Any]:
        return self._reg("PUT", f"/projects/{_q(project)}/models/{_q(model)}/aliases/{_q(alias)}",
                         json={"version": version})

    def get_alias(self, project: str, model: str, alias: str) -> dict[str, Any]:
        return self._reg("GET", f"/projects/{_q(project)}/models/{_q(model)}/aliases/{_q(alias)}")

    def alias_history(self, project: str, model: str, alias: str) -> list[dict[str, Any]]:
        return self._reg("GET", f"/projects/{_q(project)}/models/{_q(model)}/aliases/{_q(alias)}/history")["history"]

    def log_model(self, project: str, run_id: str, model: Any, name: str, *, flavour: str | None = None,
                  signature: list[dict[str, str]] | None = None, input_example: Any = None,
                  batchable: bool = True) -> dict[str, Any]:
        """Package, upload and register a model version from run ``run_id`` (see cairn.serving.package)."""
        from cairn.serving.package import log_model

        return log_model(self, project, run_id, model, name, flavour=flavour, signature=signature,
                         input_example=input_example, batchable=batchable)

    def load_model(self, project: str, ref: str, cache_dir: str | os.PathLike[str] | None = None) -> Any:
        """A registered model ready to ``predict(DataFrame)``: ``"name@alias"`` or ``"name/3"``,
        downloaded once into a cache keyed by the package digest."""
        from cairn.serving.package import load_model

        return load_model(self, project, ref, Path(cache_dir) if cache_dir else None)[0]
