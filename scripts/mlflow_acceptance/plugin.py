"""pytest plugin: MLflow's REST integration tests against a running Cairn, test bodies untouched.

Load it into MLflow's own test run (``PYTHONPATH=<cairn>/scripts pytest -p mlflow_acceptance.plugin
--cairn-gateway URL --cairn-token TOKEN tests/tracking/...``). It replaces the functions of the
server fixtures that MLflow's test modules define (``mlflow_client``/``cli_env`` of
test_rest_tracking.py, ``client`` of test_model_registry.py, ``artifacts_server`` of
test_mlflow_artifacts.py, and their ``cached_db``) so that each test gets ONE FRESH CAIRN PROJECT
and the tracking URI ``<gateway>/mlflow/<project>``. Module-level fixtures win over a plugin's
fixtures by name, so overriding by defining fixtures here would not work: the replacement is done
on the FixtureDefs once collection is over, keeping each fixture's argument names (pytest passes
arguments by those names), scope and params.

MLflow's tests assume a server without authentication and call it with bare ``requests`` too, so
the admin token is sent on every request to the gateway that carries no Authorization header of
its own (and is in ``MLFLOW_TRACKING_TOKEN`` for the client). Tests in ``catalog.NOT_APPLICABLE``
are skipped with their reason; only the counted store type is run (``catalog.counted``). Each
test's outcome goes to ``--cairn-report`` (JSON lines) for the runner script to count.
"""

from __future__ import annotations

import json
import os
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from mlflow_acceptance import catalog

NA_PREFIX = "not applicable to Cairn: "


class Cairn:
    """The gateway under test: makes projects, names their tracking URIs."""

    def __init__(self, gateway: str, token: str) -> None:
        self.gateway = gateway.rstrip("/")
        self.token = token

    def new_project(self) -> str:
        """A fresh project (the admin token's user is its first admin); its tracking URI."""
        name = f"acc-{uuid.uuid4().hex[:16]}"
        response = requests.post(f"{self.gateway}/api/v1/registry/projects", json={"name": name},
                                 headers={"Authorization": f"Bearer {self.token}"}, timeout=60)
        if response.status_code != 201:
            raise RuntimeError(f"creating the Cairn project {name} failed: "
                               f"{response.status_code} {response.text[:500]}")
        return f"{self.gateway}/mlflow/{name}"


_cairn: Cairn | None = None


def _current() -> Cairn:
    assert _cairn is not None, "the Cairn gateway is not configured (--cairn-gateway, --cairn-token)"
    return _cairn


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("cairn", "MLflow's tests against Cairn")
    group.addoption("--cairn-gateway", default=os.environ.get("CAIRN_ACC_GATEWAY"),
                    help="URL of the running Cairn gateway (env CAIRN_ACC_GATEWAY)")
    group.addoption("--cairn-token", default=os.environ.get("CAIRN_ACC_TOKEN"),
                    help="a site-admin token of that gateway (env CAIRN_ACC_TOKEN)")
    group.addoption("--cairn-report", default=None, help="write each test's outcome here (JSON lines)")
    group.addoption("--mlflow-reference", action="store_true", default=False,
                    help="leave MLflow's own server fixtures in place (a reference run against MLflow's "
                         "server): only the counting and the report")


def _send_token_to_gateway(gateway: str, token: str) -> None:
    """Add the token to every request to the gateway that has no Authorization header: MLflow's
    tests call the server with bare ``requests.get/post`` (they expect no authentication)."""
    original = requests.Session.request

    def request(self: requests.Session, method: str, url: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(url, str) and (url == gateway or url.startswith(gateway + "/")):
            headers = dict(kwargs.get("headers") or {})
            if not any(k.lower() == "authorization" for k in headers) and kwargs.get("auth") is None:
                headers["Authorization"] = f"Bearer {token}"
                kwargs["headers"] = headers
        return original(self, method, url, *args, **kwargs)

    requests.Session.request = request  # type: ignore[method-assign]


def pytest_configure(config: pytest.Config) -> None:
    global _cairn
    path = config.getoption("cairn_report")
    config.stash[_REPORT] = Path(path) if path else None
    if path:
        Path(path).write_text("")
    if config.getoption("mlflow_reference"):
        return
    gateway, token = config.getoption("cairn_gateway"), config.getoption("cairn_token")
    if not gateway or not token:
        raise pytest.UsageError("mlflow_acceptance: give --cairn-gateway and --cairn-token "
                                "(or CAIRN_ACC_GATEWAY and CAIRN_ACC_TOKEN)")
    _cairn = Cairn(gateway, token)
    os.environ["MLFLOW_TRACKING_TOKEN"] = token
    _send_token_to_gateway(_cairn.gateway, token)


_REPORT = pytest.StashKey[Path | None]()


# --- the replacement fixture functions (same argument names as MLflow's) ---------------------

def cached_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """MLflow's makes a migrated SQLite database for its server; Cairn needs none."""
    return tmp_path_factory.mktemp("cairn_no_db") / "unused.db"


def _project_client() -> Any:
    """A client of a fresh project, which is also the process's tracking URI: MLflow's in-process
    server fixture leaves the global tracking URI on the server's own backend store, and tests
    rely on that (the CLI commands they invoke in-process, the fluent API)."""
    import mlflow

    uri = _current().new_project()
    mlflow.set_tracking_uri(uri)  # MLflow's autouse tracking_uri_mock restores it after the test
    return mlflow.MlflowClient(uri)


def mlflow_client(store_type: str, tmp_path: Path, cached_db: Path) -> Iterator[Any]:
    yield _project_client()


def registry_client(request: pytest.FixtureRequest, tmp_path: Path, cached_db: Path) -> Iterator[Any]:
    yield _project_client()


def cli_env(mlflow_client: Any) -> dict[str, str]:
    return {"LC_ALL": "en_US.UTF-8", "LANG": "en_US.UTF-8",
            "MLFLOW_TRACKING_URI": mlflow_client.tracking_uri,
            "MLFLOW_TRACKING_TOKEN": _current().token}


class ArtifactsServer:
    """Stands in for test_mlflow_artifacts.py's module-scoped ``ArtifactsServer`` tuple: the
    fixture stays module-scoped, but ``url`` names the current test's fresh project (set by
    ``_cairn_artifacts_project`` before each test)."""

    def __init__(self) -> None:
        self.project_url: str | None = None
        self._tmp = tempfile.TemporaryDirectory(prefix="cairn-acc-")
        # The server's disk does not exist here: the tests that read it are not applicable.
        self.artifacts_destination = os.path.join(self._tmp.name, "not-the-server-disk")
        self.backend_store_uri = "cairn://not-a-backend-store"
        self.process = None

    @property
    def url(self) -> str:
        assert self.project_url is not None, "no Cairn project for this test"
        return self.project_url

    @property
    def default_artifact_root(self) -> str:
        return f"{self.url}/api/2.0/mlflow-artifacts/artifacts"


def artifacts_server() -> Iterator[ArtifactsServer]:
    server = ArtifactsServer()
    try:
        yield server
    finally:
        server._tmp.cleanup()


# (module file name, fixture name) -> replacement
REPLACEMENTS: dict[tuple[str, str], Any] = {
    ("test_rest_tracking.py", "cached_db"): cached_db,
    ("test_rest_tracking.py", "mlflow_client"): mlflow_client,
    ("test_rest_tracking.py", "cli_env"): cli_env,
    ("test_model_registry.py", "cached_db"): cached_db,
    ("test_model_registry.py", "client"): registry_client,
    ("test_mlflow_artifacts.py", "artifacts_server"): artifacts_server,
}


def _all_fixturedefs(manager: Any) -> Iterator[tuple[str, Any]]:
    """Every FixtureDef pytest knows, by fixture name (pytest 8 keeps one list per name;
    pytest 9 keeps them per defining node and per node id)."""
    if hasattr(manager, "_arg2fixturedefs"):  # pytest 8
        for name, defs in manager._arg2fixturedefs.items():
            for fixturedef in defs:
                yield name, fixturedef
        return
    seen: set[int] = set()
    for table in (manager._arg2node2fixturedefs, manager._arg2nodeid2fixturedefs):  # pytest 9
        for name, by_node in table.items():
            for defs in by_node.values():
                for fixturedef in defs:
                    if id(fixturedef) not in seen:
                        seen.add(id(fixturedef))
                        yield name, fixturedef


def _replace_fixtures(session: pytest.Session) -> list[str]:
    """Point MLflow's server fixtures at Cairn; returns the ones replaced ("file::name")."""
    import inspect

    replaced = []
    for name, fixturedef in _all_fixturedefs(session._fixturemanager):
        module = fixturedef.baseid.split("::")[0].rsplit("/", 1)[-1]
        replacement = REPLACEMENTS.get((module, name))
        if replacement is None:
            continue
        wanted = list(fixturedef.argnames)
        given = list(inspect.signature(replacement).parameters)
        if wanted != given:
            raise pytest.UsageError(f"mlflow_acceptance: {module}::{name} takes {wanted}, "
                                    f"the replacement takes {given}: MLflow's fixture changed")
        fixturedef.func = replacement
        replaced.append(f"{module}::{name}")
    return replaced


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config,
                                  items: list[pytest.Item]) -> None:
    reference = config.getoption("mlflow_reference")
    if not reference:
        replaced = _replace_fixtures(session)
        modules = {item.path.name for item in items}
        missing = [f"{m}::{n}" for (m, n) in REPLACEMENTS if m in modules and f"{m}::{n}" not in replaced]
        if missing:
            raise pytest.UsageError(f"mlflow_acceptance: fixtures not found (MLflow's tests changed?): {missing}")
    kept: list[pytest.Item] = []
    dropped: list[pytest.Item] = []
    for item in items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        (kept if catalog.counted(params) else dropped).append(item)
        reason = catalog.not_applicable_reason(item.nodeid)
        if reason is not None and not reference:
            item.add_marker(pytest.mark.skip(reason=NA_PREFIX + reason))
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


@pytest.fixture(autouse=True)
def _cairn_artifacts_project(request: pytest.FixtureRequest) -> None:
    """Before each test of test_mlflow_artifacts.py: a fresh project behind ``artifacts_server``."""
    if "artifacts_server" in request.fixturenames and catalog.not_applicable_reason(request.node.nodeid) is None:
        server = request.getfixturevalue("artifacts_server")
        if isinstance(server, ArtifactsServer):
            server.project_url = _current().new_project()


def _first_line(report: pytest.TestReport) -> str:
    crash = getattr(report.longrepr, "reprcrash", None)
    if crash is not None:
        return str(crash.message).splitlines()[0][:400] if crash.message else ""
    if isinstance(report.longrepr, tuple):  # a skip: (file, line, reason)
        return str(report.longrepr[2]).removeprefix("Skipped: ")
    return str(report.longrepr).strip().splitlines()[-1][:400] if report.longrepr else ""


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    path = _report_path
    if path is None:
        return
    if hasattr(report, "wasxfail") and not report.failed:  # MLflow's own expected failures
        if report.skipped:
            _record(path, report.nodeid, catalog.SKIPPED, f"xfail: {report.wasxfail}")
        elif report.when == "call":
            _record(path, report.nodeid, catalog.PASSED, "")
        return
    if report.failed:
        outcome = catalog.FAILED
    elif report.skipped:
        message = _first_line(report)
        outcome = catalog.NOT_APPLICABLE_OUTCOME if message.startswith(NA_PREFIX) else catalog.SKIPPED
    elif report.when == "call":
        outcome = catalog.PASSED
    else:
        return
    message = _first_line(report) if outcome != catalog.PASSED else ""
    if outcome == catalog.NOT_APPLICABLE_OUTCOME:
        message = message[len(NA_PREFIX):]
    if report.failed and report.when != "call":
        message = f"[{report.when}] {message}"
    _record(path, report.nodeid, outcome, message)


def _record(path: Path, nodeid: str, outcome: str, message: str) -> None:
    with path.open("a") as out:
        out.write(json.dumps({"nodeid": nodeid, "outcome": outcome, "message": message}) + "\n")


_report_path: Path | None = None


@pytest.hookimpl(trylast=True)
def pytest_sessionstart(session: pytest.Session) -> None:
    global _report_path
    _report_path = session.config.stash.get(_REPORT, None)
