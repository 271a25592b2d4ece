"""What is run, how it is counted, and what is not applicable: shared by the plugin (inside
MLflow's test run) and the runner script, and tested by Cairn's suite without MLflow's repository.

Stdlib only: this module is imported by the plugin in MLflow's venv and by Cairn's tests.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

# The three files of MLflow's repository (at the pinned commit) that issue 25 counts.
TEST_FILES = (
    "tests/tracking/test_rest_tracking.py",
    "tests/tracking/test_model_registry.py",
    "tests/tracking/test_mlflow_artifacts.py",
)

# MLflow commit the suite is pinned to (the 3.6 line, right after 3.6.0).
MLFLOW_COMMIT = "33faf0c145003119eeb51771ef67cba461c3538a"

# MLflow parametrizes its server fixtures by backend store ("file" and "sqlalchemy"), which runs
# every test twice against the same REST API. Cairn is neither store, so each test is run once,
# with the store MLflow's own server defaults to (SQLAlchemy/SQLite since 3.x): some tests skip
# themselves for "file", none for "sqlalchemy". The other parameter is deselected, not counted.
COUNTED_STORE = "sqlalchemy"
STORE_PARAMS = ("store_type", "client")  # fixture names whose param is the store type

# Tests that cannot say anything about Cairn: they read or write the MLflow server's own disk,
# start their own MLflow server, or patch the MLflow server's in-process handlers. Keyed by the
# test function's name (every parametrization of it); each is skipped with its reason.
NOT_APPLICABLE: dict[str, str] = {
    # test_rest_tracking.py
    "test_artifacts": "asserts the experiment's artifact location is under the MLflow server's "
                      "local artifact root (a temp dir of the test)",
    "test_get_metric_history_bulk_calls_optimized_impl_when_expected":
        "patches the MLflow server's in-process handlers (_get_tracking_store) and calls its Flask app",
    "test_create_model_version_with_validation_regex":
        "starts its own `mlflow server` with a source-validation setting",
    "test_gateway_proxy_handler_rejects_invalid_requests":
        "starts its own MLflow server (_init_server) with MLFLOW_DEPLOYMENTS_TARGET",
    "test_create_model_version_with_file_uri":
        "asserts the run's artifact URI is file:// (the MLflow server's own disk as artifact root)",
    "test_logging_model_with_local_artifact_uri":
        "asserts the run's artifact URI is file:// (the MLflow server's own disk as artifact root)",
    "test_create_model_version_with_path_source":
        "registers the run's artifact URI with its file:// cut off, a local path only where the "
        "artifact root is the MLflow server's own disk",
    "test_create_get_search_experiment":
        "asserts that a relative artifact_location resolves against the server process's working "
        "directory, the test's own only for MLflow's in-process server",
    # test_mlflow_artifacts.py
    "test_mlflow_artifacts_rest_apis": "reads the uploaded files from the MLflow server's "
                                       "--artifacts-destination directory",
    "test_log_artifact": "reads the logged files from the MLflow server's --artifacts-destination directory",
    "test_mlflow_artifacts_example": "builds and runs MLflow's docker-compose example (its own server)",
    "test_rest_get_model_version_artifact_api_proxied_artifact_root":
        "writes into the MLflow server's --artifacts-destination and opens its SQLite backend store directly",
}

_PARAM = re.compile(r"\[(?P<params>.*)\]$")


def function_name(nodeid: str) -> str:
    """``tests/x.py::test_y[sqlalchemy-a]`` -> ``test_y``."""
    name = nodeid.rsplit("::", 1)[-1]
    return _PARAM.sub("", name)


def not_applicable_reason(nodeid: str) -> str | None:
    """Why a test is not applicable to Cairn, or None when it is."""
    return NOT_APPLICABLE.get(function_name(nodeid))


def counted(params: Mapping[str, object]) -> bool:
    """Whether a test with these fixture params is counted (run): only the counted store type."""
    for name in STORE_PARAMS:
        value = params.get(name)
        if value in ("file", "sqlalchemy") and value != COUNTED_STORE:
            return False
    return True


# Outcomes of one test, as the plugin records them.
PASSED, FAILED, NOT_APPLICABLE_OUTCOME, SKIPPED = "passed", "failed", "not_applicable", "skipped"


@dataclass
class Summary:
    """Counts of a run and the failing tests with their first error line."""

    counts: Counter[str] = field(default_factory=Counter)
    failures: dict[str, str] = field(default_factory=dict)
    not_applicable: dict[str, str] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def as_json(self) -> dict[str, object]:
        return {"total": self.total, "passed": self.counts[PASSED], "failed": self.counts[FAILED],
                "not_applicable": self.counts[NOT_APPLICABLE_OUTCOME], "skipped": self.counts[SKIPPED],
                "failures": self.failures, "not_applicable_tests": self.not_applicable,
                "skipped_tests": self.skipped}


def summarize(records: Iterable[Mapping[str, str]]) -> Summary:
    """Fold the plugin's per-test records (``nodeid``, ``outcome``, ``message``) into counts.

    A test recorded twice (a setup error and then a teardown error, say) counts once, with its
    worst outcome: failed beats skipped beats passed.
    """
    rank = {PASSED: 0, SKIPPED: 1, NOT_APPLICABLE_OUTCOME: 2, FAILED: 3}
    worst: dict[str, tuple[str, str]] = {}
    for record in records:
        nodeid, outcome, message = record["nodeid"], record["outcome"], record.get("message", "")
        if outcome not in rank:
            raise ValueError(f"unknown outcome {outcome!r} for {nodeid}")
        seen = worst.get(nodeid)
        if seen is None or rank[outcome] > rank[seen[0]]:
            worst[nodeid] = (outcome, message)
    summary = Summary()
    for nodeid, (outcome, message) in sorted(worst.items()):
        summary.counts[outcome] += 1
        if outcome == FAILED:
            summary.failures[nodeid] = message
        elif outcome == NOT_APPLICABLE_OUTCOME:
            summary.not_applicable[nodeid] = message
        elif outcome == SKIPPED:
            summary.skipped[nodeid] = message
    return summary
