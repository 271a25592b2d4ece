"""``cairn serve --deployment P/NAME``: a replica that follows its deployment. It reports itself
started, answers with the deployment's version, switches with no failed request when the alias
it follows moves and when the deployment is rolled back, and its sampled requests reach the
inference log through the deployments service, where feedback labels join them."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner
from serving_proc import log_answer_versions, serving, wait_until

from cairn.cli.main import cli
from cairn.sdk.client import Client
from cairn.sdk.deployments import Deployments

pytestmark = pytest.mark.shared_stack

PROJECT = "serve-deployment"
BODY = {"dataframe_split": {"columns": ["x"], "data": [[1.0], [2.0]]}}


@pytest.fixture(scope="module")
def client(platform: Any, tmp_path_factory: pytest.TempPathFactory) -> Client:
    """Model ``answer``: versions 1 and 2 answer their number; alias ``production`` on 1."""
    client = Client(platform.gateway, platform.token)
    log_answer_versions(client, PROJECT, tmp_path_factory.mktemp("models"))
    client.set_alias(PROJECT, "answer", "production", 1)
    return client


def test_a_replica_follows_its_deployment_and_logs_its_requests(platform: Any, client: Client,
                                                                 tmp_path: Path) -> None:
    deployments = Deployments(client)
    # no replica set (0 replicas): this test runs the one replica itself
    deployments.create(PROJECT, "answers", environment="dev", model="answer", follows="production",
                       replicas=0, sample_rate=1.0)
    with serving(platform, tmp_path, "--deployment", f"{PROJECT}/answers", "--poll-s", "0.2") as served:
        reported = wait_until(lambda: [r for r in deployments.replicas(PROJECT, "answers")
                                       if r.get("state") == "started"], what="the replica's report")
        assert reported[0]["url"] == served.url and reported[0]["version"] == 1

        seen: list[tuple[int, str, str]] = []
        stop = threading.Event()

        def loop() -> None:
            with served.client() as http:
                while not stop.is_set():
                    resp = http.post("/invocations", json=BODY)
                    seen.append((resp.status_code, resp.headers.get("X-Model-Version", ""),
                                 resp.headers.get("X-Request-Id", "")))

        worker = threading.Thread(target=loop)
        worker.start()
        try:
            wait_until(lambda: len(seen) > 10, what="requests on version 1")
            client.set_alias(PROJECT, "answer", "production", 2)  # the deployment follows, the replica too
            wait_until(lambda: any(v == "2" for _, v, _ in seen), what="the switch to version 2")
            assert deployments.get(PROJECT, "answers")["version"] == 2
            deployments.rollback(PROJECT, "answers")
            count = len(seen)
            wait_until(lambda: any(v == "1" for _, v, _ in seen[count:]), what="the rollback to version 1")
        finally:
            stop.set()
            worker.join(timeout=60)
        assert all(status == 200 for status, _, _ in seen), [s for s in seen if s[0] != 200][:3]
        versions = [v for _, v, _ in seen]
        first_two = versions.index("2")
        assert set(versions[:first_two]) == {"1"}

        # every answered request was sampled (rate 1.0) and reached the log through the service
        gateway = httpx.Client(base_url=f"{platform.gateway}/api/v1/deployments/projects/{PROJECT}/deployments/answers",
                               headers=platform.headers, timeout=30)
        logged = wait_until(lambda: (body := gateway.get("/requests", params={"limit": 1000}).json())["count"]
                            >= len(seen) and body, what="the sampled requests in the inference log")
        ids = {r["request_id"] for r in logged["requests"]}
        assert {rid for _, _, rid in seen} <= ids
        labelled = seen[0][2]
        assert gateway.post("/feedback", json={"labels": [{"request_id": labelled, "label": 1}]}).json()["accepted"] == 1
        joined = wait_until(lambda: [r for r in gateway.get("/requests", params={"limit": 1000}).json()["requests"]
                                     if r["request_id"] == labelled and r.get("label") is not None],
                            what="the label joined to its request")
        assert joined[0]["label"] == 1
        shown = CliRunner(env={"CAIRN_TOKEN": platform.token}).invoke(cli, [
            "--url", platform.gateway, "--json", "deployments", "requests", "-p", PROJECT, "answers", "--limit", "3"])
        assert shown.exit_code == 0, shown.output
        assert len(json.loads(shown.output)) == 3
        [listed] = deployments.list(PROJECT)["deployments"]
        assert listed["requests_per_s"] > 0 and listed["error_rate"] == 0
    stopped = wait_until(lambda: [r for r in deployments.replicas(PROJECT, "answers") if r.get("state") == "stopped"],
                         what="the replica's stop report")
    assert stopped[0]["url"] == served.url


def test_stopped_is_a_replicas_last_word(client: Client) -> None:
    """The config poll can still be switching versions while the server shuts down (it did under
    load in CI): a "started" asked for after "stopped" is dropped, and reports go one at a time so
    one in flight cannot land after "stopped" either."""
    import asyncio

    from cairn.serving.serve import ReplicaReports

    deployments = Deployments(client)
    deployments.create(PROJECT, "last-word", environment="dev", model="answer", follows="production", replicas=0)
    path = f"/api/v1/deployments/projects/{PROJECT}/deployments/last-word/replicas/r1"
    reports = ReplicaReports(client, path, "http://127.0.0.1:1", managed=False)
    reports.send("failed", 1, "version 1 failed to load: boom")  # as `cairn serve` says a load failure
    [failed] = deployments.replicas(PROJECT, "last-word")
    assert (failed["state"], failed["version"]) == ("failed", 1)

    async def shut_down_while_switching() -> None:
        switching = asyncio.ensure_future(reports.report("started", 1, ""))
        await asyncio.sleep(0)  # the switch's report is under way when the stop comes
        await reports.report("stopped", 1, "shutdown")
        await switching
        await reports.report("started", 2, "")  # a switch that finished after the stop

    asyncio.run(shut_down_while_switching())
    [replica] = deployments.replicas(PROJECT, "last-word")
    assert (replica["state"], replica["version"]) == ("stopped", 1)
