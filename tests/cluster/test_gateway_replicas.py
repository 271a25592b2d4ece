"""Gateway replicas (issue 26): two gateway processes over one NATS and one set of services.

A web session made on one gateway works on the other and a sign-out on either ends it on both
(sessions live in the ``cairn-sessions`` key-value bucket); rate limits are each replica's share of
the configured ones (CAIRN_GATEWAY_REPLICAS); an event stream resumed on the other gateway with
Last-Event-ID goes on exactly after the last event seen; ``cairn status --json`` reports nodes,
streams, services with their replicas, and leaders.

The second gateway runs beside the session's shared platform (it changes nothing of it): a replica
name of its own (its own durable consumer), a data directory of its own (its own read model), the
site's service key and the gateway's NATS credentials.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import loopback
import pytest
from click.testing import CliRunner
from service_fork import ServiceProcess

from cairn.cli.main import cli
from cairn.natsserver import free_ports, wait_for_tcp
from cairn.protocol import LEASE_BUCKET
from cairn.services.gateway.cluster import services_report
from cairn.services.gateway.sessions import SESSION_COOKIE

from platform_harness import START_TIMEOUT_S, Platform

pytestmark = pytest.mark.shared_stack  # see tests/conftest.py

TOKEN_BURST = 10  # the configured burst per token; each of 2 replicas enforces half of it


@pytest.fixture(scope="module")
def second_gateway(platform: Platform, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Another gateway replica in front of the platform's services; its base URL. It enforces
    rate limits (the platform's gateway has them off), except for site admins."""
    root = tmp_path_factory.mktemp("gateway-2")
    for _ in range(3):  # a free port may be taken before the gateway binds it: again on another
        port = free_ports(1)[0]
        # the platform gateway's environment (NATS URL and credentials, service URLs), then its own
        env = {**platform._env("gateway"), "CAIRN_PORT": str(port), "CAIRN_DATA_DIR": str(root / "data"),
               "CAIRN_SERVICE_KEY_FILE": str(platform.data_dir / "secrets" / "service.key"),
               "CAIRN_REPLICA": "g2", "CAIRN_GATEWAY_REPLICAS": "2", "CAIRN_RATE_LIMIT": "0.001",
               "CAIRN_RATE_BURST": str(TOKEN_BURST), "CAIRN_RATE_LIMIT_ADMIN": "0"}
        log = root / "gateway.log"
        proc: subprocess.Popen[bytes] | ServiceProcess
        if platform.forked:
            proc = ServiceProcess("gateway", env, log)
        else:
            with open(log, "ab") as out:
                proc = subprocess.Popen([sys.executable, "-m", "cairn.services.gateway"], env=env,
                                        stdout=out, stderr=out)
        url = f"http://127.0.0.1:{port}"
        try:
            wait_until_healthy(url, proc)
            break
        except (RuntimeError, TimeoutError):
            stop(proc)
            if "address already in use" not in log.read_text(errors="replace"):
                raise
    else:
        raise RuntimeError(f"the second gateway found no free port; log in {root}")
    try:
        yield url
    finally:
        stop(proc)


def stop(proc: subprocess.Popen[bytes] | ServiceProcess) -> None:
    if proc.poll() is None:
        proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def wait_until_healthy(url: str, proc: subprocess.Popen[bytes] | ServiceProcess) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    wait_for_tcp("127.0.0.1", int(url.rsplit(":", 1)[1]), timeout=START_TIMEOUT_S)
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the second gateway exited ({proc.poll()})")
        try:
            if loopback.get(f"{url}/healthz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise TimeoutError(f"the second gateway at {url} did not become healthy")


def wait_caught_up(platform: Platform, gateway: str) -> None:
    """Until ``gateway``'s read model has applied everything in the log now (e.g. a token just
    made through the other gateway), read from its status (site admins are not rate limited)."""
    target = int(loopback.get(f"{platform.gateway}/api/v1/status", headers=platform.headers,
                              timeout=10).json()["event_log"]["last_seq"])
    deadline = time.monotonic() + 30
    while True:
        status = loopback.get(f"{gateway}/api/v1/status", headers=platform.headers, timeout=10).json()
        if status["services"]["gateway"]["applied_seq"] >= target:
            return
        assert time.monotonic() < deadline, f"{gateway} did not apply up to {target}"
        time.sleep(0.05)


def sign_in(gateway: str, token: str) -> tuple[dict[str, str], str]:
    """Sign in on ``gateway``: the cookie header a browser would send from then on, and the CSRF value."""
    resp = loopback.post(f"{gateway}/api/v1/session", json={"token": token}, timeout=10)
    assert resp.status_code == 200, resp.text
    return {"Cookie": f"{SESSION_COOKIE}={resp.cookies[SESSION_COOKIE]}"}, resp.json()["csrf"]


def test_a_session_made_on_one_gateway_works_on_the_other_and_a_sign_out_ends_it_on_both(
        platform: Platform, second_gateway: str) -> None:
    cookies, csrf = sign_in(platform.gateway, platform.token)
    there = loopback.get(f"{second_gateway}/api/v1/session", headers=cookies, timeout=10)
    assert there.status_code == 200 and there.json()["user"] == "admin" and there.json()["csrf"] == csrf
    made = loopback.post(f"{second_gateway}/api/v1/registry/projects", json={"name": "gwrep-session"},
                         headers={**cookies, "X-CSRF-Token": csrf}, timeout=10)
    assert made.status_code == 201, made.text  # a write with the session and its CSRF value, on the other one
    assert loopback.get(f"{platform.gateway}/api/v1/registry/projects/gwrep-session", headers=cookies,
                        timeout=10).status_code == 200

    ended = loopback.request("DELETE", f"{second_gateway}/api/v1/session",
                             headers={**cookies, "X-CSRF-Token": csrf}, timeout=10)
    assert ended.status_code == 204
    for gateway in (platform.gateway, second_gateway):
        after = loopback.get(f"{gateway}/api/v1/session", headers=cookies, timeout=10)
        assert after.status_code == 401 and "ended" in after.text
    # and the other way round: made on the second, ended on the first
    cookies, csrf = sign_in(second_gateway, platform.token)
    assert loopback.get(f"{platform.gateway}/api/v1/whoami", headers=cookies, timeout=10).status_code == 200
    assert loopback.request("DELETE", f"{platform.gateway}/api/v1/session",
                            headers={**cookies, "X-CSRF-Token": csrf}, timeout=10).status_code == 204
    assert loopback.get(f"{second_gateway}/api/v1/whoami", headers=cookies, timeout=10).status_code == 401


def test_a_revoked_token_ends_its_sessions_on_every_gateway(platform: Platform, second_gateway: str) -> None:
    made = loopback.post(f"{platform.gateway}/api/v1/tokens", json={"user": "gwrep-ann"},
                         headers=platform.headers, timeout=10).json()
    cookies, _ = sign_in(platform.gateway, made["token"])
    wait_caught_up(platform, second_gateway)
    assert loopback.get(f"{second_gateway}/api/v1/session", headers=cookies, timeout=10).status_code == 200
    revoked = loopback.request("DELETE", f"{second_gateway}/api/v1/tokens/{made['token_id']}",
                               headers=platform.headers, timeout=10)
    assert revoked.status_code == 200, revoked.text
    deadline = time.monotonic() + 30  # the first gateway's read model applies the revocation
    while loopback.get(f"{platform.gateway}/api/v1/session", headers=cookies, timeout=10).status_code != 401:
        assert time.monotonic() < deadline, "the session outlived its revoked token"
        time.sleep(0.05)
    assert loopback.get(f"{second_gateway}/api/v1/session", headers=cookies, timeout=10).status_code == 401


def test_each_gateway_enforces_its_share_of_the_rate_limit(platform: Platform, second_gateway: str) -> None:
    token = loopback.post(f"{platform.gateway}/api/v1/tokens", json={"user": "gwrep-bo"},
                          headers=platform.headers, timeout=10).json()["token"]
    headers = {"Authorization": f"Bearer {token}"}
    wait_caught_up(platform, second_gateway)
    codes = [loopback.get(f"{second_gateway}/api/v1/whoami", headers=headers, timeout=10).status_code
             for _ in range(TOKEN_BURST)]
    share = TOKEN_BURST // 2
    assert codes == [200] * share + [429] * (TOKEN_BURST - share)  # half the burst: 2 replicas
    refused = loopback.get(f"{second_gateway}/api/v1/whoami", headers=headers, timeout=10)
    assert refused.json()["error"]["details"]["limits"] == ["token"] and int(refused.headers["Retry-After"]) >= 1
    # the buckets are the replica's own: the other gateway (limits off here) still answers
    assert loopback.get(f"{platform.gateway}/api/v1/whoami", headers=headers, timeout=10).status_code == 200


def read_sse(resp: httpx.Response, lines: Iterator[str], count: int) -> list[tuple[int, dict]]:
    """The next ``count`` events of an open stream, as (id, event)."""
    out: list[tuple[int, dict]] = []
    event_id = None
    for line in lines:
        if line.startswith("id: "):
            event_id = int(line[4:])
        elif line.startswith("data: "):
            assert event_id is not None
            out.append((event_id, json.loads(line[6:])))
            if len(out) == count:
                return out
    raise AssertionError(f"the stream ended after {len(out)} of {count} events")


def test_an_event_stream_resumes_on_the_other_gateway_without_gap_or_duplicate(
        platform: Platform, second_gateway: str) -> None:
    api = httpx.Client(base_url=f"{platform.gateway}/api/v1/registry", headers=platform.headers, timeout=30)
    project = "gwrep-sse"
    assert api.post("/projects", json={"name": project}).status_code == 201
    run = api.post(f"/projects/{project}/runs", json={}).json()

    def tag(i: int) -> None:
        assert api.put(f"/projects/{project}/runs/{run['id']}/tags/t{i}", json={"value": str(i)}).status_code == 200

    for i in range(6):
        tag(i)
    params = {"project": project, "types": "run.tag_set"}
    with loopback.stream("GET", f"{platform.gateway}/api/v1/events/stream", params={**params, "since": "0"},
                         headers=platform.headers, timeout=20) as resp:
        assert resp.status_code == 200
        first = read_sse(resp, resp.iter_lines(), 3)
    assert [e["data"]["key"] for _, e in first] == ["t0", "t1", "t2"]
    headers = {**platform.headers, "Last-Event-ID": str(first[-1][0])}
    with loopback.stream("GET", f"{second_gateway}/api/v1/events/stream", params=params, headers=headers,
                         timeout=20) as resp:
        assert resp.status_code == 200
        lines = resp.iter_lines()
        rest = read_sse(resp, lines, 3)
        tag(6)  # appended while the resumed stream is open: it follows live
        live = read_sse(resp, lines, 1)
    seen = first + rest + live
    assert [e["data"]["key"] for _, e in seen] == [f"t{i}" for i in range(7)]
    ids = [event_id for event_id, _ in seen]
    assert ids == sorted(set(ids)) and all(e["sequence"] == i for i, e in seen)


def test_cairn_status_reports_nodes_streams_service_replicas_and_leaders(platform: Platform) -> None:
    """The one-machine shape: one node leading every stream, one replica per service, and the
    leases the singletons took (the scheduler's dispatcher, kernel/leader.py)."""
    lease_key = "scheduler.dispatcher"
    runner = CliRunner(env={"CAIRN_TOKEN": platform.token, "COLUMNS": "200"})  # tables uncut
    result = runner.invoke(cli, ["--url", platform.gateway, "status", "--json"], catch_exceptions=False)
    table = runner.invoke(cli, ["--url", platform.gateway, "status"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert table.exit_code == 0 and all(word in table.output for word in ("CAIRN_EVENTS", "registry", lease_key))
    report = json.loads(result.output)
    assert report["ready"] is True
    last = report["event_log"]["last_seq"]
    [node] = report["nodes"]
    assert node["connected"] is True and node["current"] is True and node["lag"] == 0
    streams = {s["name"]: s for s in report["streams"]}
    events = streams["CAIRN_EVENTS"]
    assert events["replicas"] == 1 and events["leader"] == node["name"] and events["last_seq"] >= last > 0
    assert {"CAIRN_EVENTS", "KV_cairn-sessions", f"KV_{LEASE_BUCKET}"} <= set(streams) <= {*node["leads"]}
    for name in ("gateway", "registry", "artifacts", "metrics", "scheduler"):
        service = report["services"][name]
        [replica] = service["replicas"]
        assert replica["ready"] is True and 0 <= replica["applied_seq"] <= last and replica["lag"] >= 0
    assert report["services"]["gateway"]["replicas"][0]["replica"] == "main"
    [lease] = [item for item in report["leaders"] if item["singleton"] == lease_key]
    assert lease["holder"] == "scheduler/main" and lease["term"] >= 1 and lease["live"] is True


def test_cairn_status_for_a_caller_who_is_not_a_site_admin_shows_the_services_only(platform: Platform) -> None:
    token = loopback.post(f"{platform.gateway}/api/v1/tokens", json={"user": "gwrep-cy"},
                          headers=platform.headers, timeout=10).json()["token"]
    refused = loopback.get(f"{platform.gateway}/api/v1/status/cluster", headers={"Authorization": f"Bearer {token}"},
                           timeout=10)
    assert refused.status_code == 403
    result = CliRunner(env={"CAIRN_TOKEN": token}).invoke(cli, ["--url", platform.gateway, "--json", "status"],
                                                          catch_exceptions=False)
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["services"]["registry"]["ready"] is True
    assert (report["nodes"], report["streams"], report["leaders"]) == ([], [], [])


async def test_a_service_with_a_replica_down_is_not_ready_and_lists_both(platform: Platform) -> None:
    """CAIRN_SERVICES may give a service several URLs: each is probed, and the service's line is
    ready only when every replica is (here the second URL has nothing listening)."""
    closed = f"http://127.0.0.1:{free_ports(1)[0]}"
    async with httpx.AsyncClient() as http:
        report = await services_report(http, {"registry": [platform.service_url("registry"), closed]}, None)
    registry = report["registry"]
    assert [r["url"] for r in registry["replicas"]] == [platform.service_url("registry"), closed]
    assert registry["replicas"][0]["ready"] is True and registry["replicas"][1]["ready"] is False
    assert registry["ready"] is False and "ConnectError" in registry["error"]


DOCS = Path(__file__).resolve().parents[2] / "docs" / "cluster"


def load_balancer(name: str) -> str:
    """The ``nginx`` or ``haproxy`` binary (CAIRN_TEST_NGINX / CAIRN_TEST_HAPROXY name one that is
    not on PATH); skip without one: `apt-get install nginx haproxy` (Debian) makes these run."""
    found = os.environ.get(f"CAIRN_TEST_{name.upper()}") or shutil.which(name) or shutil.which(name, path="/usr/sbin")
    if not found:
        pytest.skip(f"{name} is not installed (apt-get install {name}): its example config is not checked")
    return found


def test_the_nginx_example_config_is_valid(tmp_path: Path) -> None:
    """docs/cluster/nginx.conf passes `nginx -t`, with its log, pid and temp paths moved under
    tmp_path (the test neither needs nor touches /var)."""
    nginx = load_balancer("nginx")
    text = (DOCS / "nginx.conf").read_text()
    temp = " ".join(f"{kind}_temp_path {tmp_path / kind};" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    text = (text.replace("/var/log/nginx/", f"{tmp_path}/").replace("/run/cairn-nginx.pid", f"{tmp_path}/nginx.pid")
            .replace("\nhttp {\n", f"\nhttp {{\n    {temp}\n", 1))
    assert "upstream cairn_gateways" in text and "proxy_buffering off" in text
    (tmp_path / "nginx.conf").write_text(text)
    checked = subprocess.run([nginx, "-t", "-p", str(tmp_path), "-e", "stderr", "-c", str(tmp_path / "nginx.conf")],
                             capture_output=True, text=True, timeout=60)
    assert checked.returncode == 0 and "test is successful" in checked.stderr, checked.stderr


def test_the_haproxy_example_config_is_valid() -> None:
    haproxy = load_balancer("haproxy")
    checked = subprocess.run([haproxy, "-c", "-f", str(DOCS / "haproxy.cfg")], capture_output=True, text=True,
                             timeout=60)
    assert checked.returncode == 0, checked.stdout + checked.stderr
