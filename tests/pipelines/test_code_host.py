"""Status back to the code host: commit-status bodies made from real pipeline_run states (the
engine's scenario on ml.yaml, played by test_engine_domain's ``Run``), sent by ``StatusReporter``
through the gateway's egress guard to a real HTTP receiver on loopback. No platform: a second
each. The guard allows private addresses only where a test says so, as the webhook tests do."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from run_replay import Run, seeds

from cairn.kernel.egress import Egress
from cairn.kernel.errors import InvalidInput
from cairn.services.pipelines import domain
from cairn.services.pipelines.code_host import DESCRIPTION_LIMIT, StatusReporter, commit_status, cut

SHA = "0123456789abcdef0123456789abcdef01234567"
TOKEN = "ghp_secret-token-never-logged"
RUN_URL = "https://cairn.example/pipelines/runs/r1"


class CodeHost:
    """A real HTTP server standing in for GitHub's API: records each request (path, headers, JSON
    body) and answers from ``replies`` (status, body) in turn, then 201."""

    def __init__(self, replies: list[tuple[int, dict[str, Any]]] | None = None) -> None:
        self.replies = list(replies or [])
        self.requests: list[tuple[str, dict[str, str], dict[str, Any]]] = []
        host = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                host.requests.append((self.path, dict(self.headers), body))
                status, reply = host.replies.pop(0) if host.replies else (201, {"state": body.get("state")})
                data = json.dumps(reply).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_port}/api/v3"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def code_host() -> Iterator[CodeHost]:
    host = CodeHost()
    yield host
    host.close()


def send(reporter: StatusReporter, repo: str, sha: str, body: dict[str, str]) -> Any:
    async def go() -> Any:
        try:
            return await reporter.report(repo, sha, body)
        finally:
            await reporter.egress.close()
    return asyncio.run(go())


def reporter_for(url: str, *, allow_private: bool = True, attempts: int = 3) -> tuple[StatusReporter, list[float]]:
    slept: list[float] = []

    async def sleep(seconds: float) -> None:  # time is mocked: the backoff is recorded, not waited
        slept.append(seconds)

    reporter = StatusReporter(url, TOKEN, Egress(allow_private=allow_private), attempts=attempts, backoff_s=0.5,
                              timeout_s=10.0, sleep=sleep)
    return reporter, slept


def fail_for_good(run: Run, step: str, reason: str, message: str) -> None:
    """Fail ``step`` at every attempt until its retries are used up and the run finishes."""
    run.advance()
    while run.step(step)["state"] == "running":
        run.append(domain.record_failure(run.state, step=step, attempt=run.step(step)["attempt"], reason=reason,
                                         message=message))
        run.advance()
    assert run.state is not None and run.state["outcome"] == "failed"


# --- the body ------------------------------------------------------------------------------------

def test_a_run_reports_pending_then_success_with_path_headers_and_body(code_host: CodeHost) -> None:
    run = Run(run_id="r1")
    run.play_to_gate("m1" * 32, auc=0.999)
    pending = commit_status(run.state, run_url=RUN_URL)  # type: ignore[arg-type]
    assert pending["state"] == "pending" and "running gate" in pending["description"]
    run.gate(seeds(0.999, 0.998, 0.999), champion=None)
    run.deploy_after_gate()
    success = commit_status(run.state, run_url=RUN_URL)  # type: ignore[arg-type]
    assert success == {"state": "success", "target_url": RUN_URL, "context": "cairn/fraud-ml",
                       "description": success["description"]}
    assert success["description"].startswith("succeeded: 9 steps (1 skipped); gate ")
    assert "no champion yet" in success["description"]

    reporter, _ = reporter_for(code_host.url)
    for body in (pending, success):
        delivery = send(reporter, "acme/fraud-models", SHA, body)
        assert delivery.delivered and delivery.status == 201 and delivery.attempts == 1
    assert [r[2] for r in code_host.requests] == [pending, success]
    for path, headers, _ in code_host.requests:
        assert path == f"/api/v3/repos/acme/fraud-models/statuses/{SHA}"
        assert headers["Authorization"] == f"Bearer {TOKEN}"
        assert headers["Accept"] == "application/vnd.github+json"
        assert headers["Content-Type"] == "application/json"


def test_a_failed_gate_is_a_failure_naming_the_step_and_its_numbers() -> None:
    run = Run(run_id="r2")
    run.play_to_gate("m2" * 32, auc=0.90)
    run.gate(seeds(0.90, 0.91, 0.90), champion=seeds(0.95, 0.95, 0.96))
    run.advance()
    body = commit_status(run.state, run_url=RUN_URL)  # type: ignore[arg-type]
    assert body["state"] == "failure"
    assert body["description"].startswith("step gate failed: ")
    assert "vs champion 0.9533" in body["description"] and len(body["description"]) <= DESCRIPTION_LIMIT


def test_a_failed_job_names_the_step_and_the_reason_and_a_cancel_is_an_error() -> None:
    run = Run(run_id="r3")
    fail_for_good(run, "prepare", "exit", "exit code 2")
    body = commit_status(run.state, run_url=RUN_URL)  # type: ignore[arg-type]
    assert body["state"] == "failure" and body["description"] == "step prepare failed (exit): exit code 2"

    cancelled = Run(run_id="r4")
    cancelled.advance()
    cancelled.append(domain.request_cancel(cancelled.state, reason="superseded by a newer push"))
    cancelled.append(domain.record_failure(cancelled.state, step="prepare", attempt=1, reason="cancelled",
                                           message="cancelled"))
    cancelled.advance()
    body = commit_status(cancelled.state, run_url=RUN_URL)  # type: ignore[arg-type]
    assert body["state"] == "error" and body["description"] == "cancelled: superseded by a newer push"


def test_the_description_is_cut_at_140_characters() -> None:
    run = Run(run_id="r5")
    fail_for_good(run, "prepare", "error", "Traceback: " + "x" * 500)
    description = commit_status(run.state, run_url=RUN_URL)["description"]  # type: ignore[arg-type]
    assert len(description) == DESCRIPTION_LIMIT and description.endswith("…")
    assert description.startswith("step prepare failed (error): Traceback: xxx")
    assert cut("short\nand\tsplit") == "short and split"


# --- the call ------------------------------------------------------------------------------------

def test_a_500_is_retried_with_backoff_until_a_201(code_host: CodeHost) -> None:
    code_host.replies = [(500, {"message": "Server Error"}), (502, {"message": "Bad Gateway"})]
    reporter, slept = reporter_for(code_host.url)
    delivery = send(reporter, "acme/fraud-models", SHA, {"state": "pending", "context": "cairn/x"})
    assert delivery.delivered and delivery.status == 201 and delivery.attempts == 3
    assert len(code_host.requests) == 3 and slept == [0.5, 1.0]


def test_5xx_every_time_gives_up_after_the_attempts_saying_the_last_answer(code_host: CodeHost) -> None:
    code_host.replies = [(503, {"message": "try later"})] * 5
    reporter, slept = reporter_for(code_host.url, attempts=2)
    delivery = send(reporter, "acme/fraud-models", SHA, {"state": "pending"})
    assert not delivery.delivered and delivery.status == 503 and delivery.attempts == 2
    assert "gave up after 2 attempts" in delivery.message and "503: try later" in delivery.message
    assert len(code_host.requests) == 2 and slept == [0.5]


def test_a_422_is_not_retried_and_its_message_is_reported(code_host: CodeHost) -> None:
    code_host.replies = [(422, {"message": "Validation Failed",
                                "errors": [{"message": "description is too long (maximum is 140 characters)"}]})]
    reporter, slept = reporter_for(code_host.url)
    delivery = send(reporter, "acme/fraud-models", SHA, {"state": "pending"})
    assert not delivery.delivered and delivery.status == 422 and delivery.attempts == 1
    assert delivery.message == ("the code host refused the status (422): Validation Failed; "
                                "description is too long (maximum is 140 characters)")
    assert len(code_host.requests) == 1 and slept == []


def test_a_connection_refused_is_retried_then_given_up() -> None:
    closed = CodeHost()
    url = closed.url
    closed.close()  # nothing listens on the port now
    reporter, slept = reporter_for(url, attempts=3)
    delivery = send(reporter, "acme/fraud-models", SHA, {"state": "pending"})
    assert not delivery.delivered and delivery.status is None and delivery.attempts == 3
    assert "no reply" in delivery.message and slept == [0.5, 1.0]


def test_a_destination_the_guard_refuses_gets_no_connection(code_host: CodeHost) -> None:
    reporter, slept = reporter_for(code_host.url, allow_private=False)
    delivery = send(reporter, "acme/fraud-models", SHA, {"state": "pending"})
    assert not delivery.delivered and delivery.attempts == 0 and delivery.status is None
    assert "127.0.0.1 is a loopback address" in delivery.message
    assert code_host.requests == [] and slept == []


@pytest.mark.parametrize(("repo", "sha", "field"), [
    ("acme", SHA, "repo"), ("acme/fraud/x", SHA, "repo"), ("acme/..", SHA, "repo"), ("-acme/x", SHA, "repo"),
    ("ac--me/x", SHA, "repo"), ("acme/x?y", SHA, "repo"), ("acme/x%2f", SHA, "repo"), ("", SHA, "repo"),
    ("acme/x", SHA[:39], "sha"), ("acme/x", SHA + "0", "sha"), ("acme/x", "g" * 40, "sha"),
    ("acme/x", "../" + SHA[3:], "sha"), ("acme/x", "main", "sha"),
])
def test_bad_repo_or_sha_is_refused_before_any_call(code_host: CodeHost, repo: str, sha: str, field: str) -> None:
    reporter, _ = reporter_for(code_host.url)
    with pytest.raises(InvalidInput) as err:
        send(reporter, repo, sha, {"state": "pending"})
    assert err.value.details == {"field": field}
    assert code_host.requests == []


def test_the_token_is_never_logged_nor_shown(code_host: CodeHost, caplog: pytest.LogCaptureFixture) -> None:
    code_host.replies = [(500, {"message": "boom"}), (401, {"message": "Bad credentials"})]
    reporter, _ = reporter_for(code_host.url)
    with caplog.at_level(logging.DEBUG):
        delivery = send(reporter, "acme/fraud-models", SHA, {"state": "pending"})
    assert delivery.status == 401 and "Bad credentials" in delivery.message
    assert caplog.records and TOKEN not in caplog.text
    assert TOKEN not in repr(reporter) and TOKEN not in delivery.message
