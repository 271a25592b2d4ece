"""Request bodies are bounded while they stream in (issue 17, item 7): a chunked body past its
limit is cut off with 413 at the gateway and at a service, without the receiving process's memory
growing with the body; a Content-Length over the limit is refused before the body is read; routes
that take large bodies (blob uploads) still take them."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import loopback
import psutil
import pytest

from cairn.core import blake3
from cairn.kernel.bodylimit import BodyLimits
from cairn.kernel.settings import ServiceSettings

from platform_harness import Platform

MiB = 1 << 20
MEMORY_BOUND = 64 * MiB


def streamed(total: int, chunk: int = MiB) -> Iterator[bytes]:
    """``total`` bytes from a generator, so httpx sends them chunked and nothing holds them whole."""
    block = b"x" * chunk
    while total > 0:
        yield block[:min(chunk, total)]
        total -= chunk


def service_client(platform: Platform, name: str) -> httpx.Client:
    """Straight to a service, past the gateway: the one place to add what services ask of callers."""
    return httpx.Client(base_url=platform.service_url(name), timeout=120, headers=platform.service_headers)


class PeakMemory:
    """How far a process's resident memory rose above where it was: the kernel's high-water mark
    (VmHWM) is reset first (``clear_refs`` 5), so the peak during the request is what is read."""

    def __init__(self, pid: int) -> None:
        self.process = psutil.Process(pid)
        Path(f"/proc/{pid}/clear_refs").write_text("5")
        self.before = self.process.memory_info().rss

    def growth(self) -> int:
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        peak_kb = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM:"))
        return max(peak_kb * 1024, self.process.memory_info().rss) - self.before


def assert_too_large(resp: httpx.Response, limit: int) -> None:
    assert resp.status_code == 413, resp.text
    error = resp.json()["error"]
    assert error["code"] == "payload_too_large" and error["details"]["limit"] == limit
    assert str(limit) in error["message"]


def test_chunked_200mib_body_is_cut_off_at_the_gateway(platform: Platform, project: str) -> None:
    gateway, registry = PeakMemory(platform.procs["gateway"].pid), PeakMemory(platform.procs["registry"].pid)
    resp = loopback.post(f"{platform.gateway}/api/v1/registry/projects/{project}/runs", content=streamed(200 * MiB),
                      headers={**platform.headers, "content-type": "application/json"}, timeout=120)
    assert_too_large(resp, 16 * MiB)
    assert gateway.growth() < MEMORY_BOUND and registry.growth() < MEMORY_BOUND
    runs = loopback.get(f"{platform.gateway}/api/v1/registry/projects/{project}/runs", headers=platform.headers)
    assert runs.json()["runs"] == []


def test_chunked_200mib_body_is_cut_off_at_a_service(platform: Platform, project: str) -> None:
    registry = PeakMemory(platform.procs["registry"].pid)
    with service_client(platform, "registry") as client:
        resp = client.post(f"/projects/{project}/runs", content=streamed(200 * MiB),
                           headers={"content-type": "application/json"})
    assert_too_large(resp, 16 * MiB)
    assert registry.growth() < MEMORY_BOUND


def test_metrics_batch_is_cut_off_at_the_batch_limit(platform: Platform, project: str) -> None:
    """The metrics service reads a batch whole before parsing it: 40 MiB stop at its 4 MiB limit."""
    run = loopback.post(f"{platform.gateway}/api/v1/registry/projects/{project}/runs", json={},
                     headers=platform.headers).json()["id"]
    metrics = PeakMemory(platform.procs["metrics"].pid)
    resp = loopback.post(f"{platform.gateway}/api/v1/metrics/projects/{project}/runs/{run}/metrics",
                      content=streamed(40 * MiB), headers={**platform.headers, "content-type": "application/json"},
                      timeout=120)
    assert_too_large(resp, 4 * MiB)
    assert metrics.growth() < MEMORY_BOUND


def test_content_length_over_the_limit_is_refused_before_the_body_is_sent(platform: Platform) -> None:
    """Only the head goes out; the 413 comes back without a byte of the body."""
    port = int(platform.gateway.rsplit(":", 1)[1])
    head = (f"POST /api/v1/registry/projects HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Authorization: {platform.headers['Authorization']}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {17 * MiB}\r\n\r\n").encode()
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(head)
        answer = b""
        while b"\r\n\r\n" not in answer:
            data = sock.recv(65536)
            assert data, f"connection closed without an answer: {answer!r}"
            answer += data
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]


def test_chunked_bodies_under_the_limit_and_large_blob_uploads_go_through(platform: Platform,
                                                                          project: str) -> None:
    params = b'{"params": {"lr": "0.1"}, "name": "chunked"}'
    resp = loopback.post(f"{platform.gateway}/api/v1/registry/projects/{project}/runs", content=iter([params[:10], params[10:]]),
                      headers={**platform.headers, "content-type": "application/json"})
    assert resp.status_code == 201, resp.text
    assert resp.json()["params"] == {"lr": "0.1"}
    blob = b"b" * (20 * MiB)  # over the 16 MiB default: blob routes take large bodies
    digest = blake3(blob).hex()
    resp = loopback.put(f"{platform.gateway}/api/v1/artifacts/projects/{project}/blobs/{digest}",
                     content=(blob[i:i + MiB] for i in range(0, len(blob), MiB)), headers=platform.headers,
                     timeout=120)
    assert resp.status_code in (200, 201), resp.text
    assert resp.json()["size"] == len(blob)


@pytest.mark.parametrize(("path", "limit"), [
    ("/projects/p/runs", 16 * MiB),
    ("/blobs/abc", 1 << 40),
    ("/blobs/missing", 16 * MiB),
    ("/projects/p/runs/r/files/model/weights.bin", 1 << 40),
    ("/projects/p/runs/r/artifacts", 16 * MiB),
    ("/projects", 16 * MiB),
])
def test_limits_by_path_take_the_most_specific_rule(path: str, limit: int) -> None:
    limits = BodyLimits(16 * MiB, {"/blobs": 1 << 40, "/blobs/missing": None, "/projects/*/runs/*/files": 1 << 40})
    assert limits.limit_for(path) == limit


def test_settings_replace_the_default_and_add_or_replace_rules() -> None:
    """CAIRN_MAX_BODY_BYTES is the default; CAIRN_BODY_LIMITS adds rules and overrides a service's."""
    settings = ServiceSettings(max_body_bytes=MiB, body_limits={"/projects/*/runs": 32 * MiB, "/blobs": 2 * MiB})
    limits = BodyLimits.from_settings(settings, {"/blobs": 1 << 40, "/blobs/missing": None})
    assert limits.limit_for("/projects/p/runs") == 32 * MiB
    assert limits.limit_for("/blobs/abc") == 2 * MiB
    assert limits.limit_for("/blobs/missing") == MiB
    assert limits.limit_for("/projects/p/experiments") == MiB
