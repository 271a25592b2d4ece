"""Gateway routing, health, status, OpenAPI and the loopback-only rule."""

from __future__ import annotations

import httpx
import pytest

from cairn.services.gateway.app import GatewaySettings, _is_loopback, create_app
from platform_harness import Platform


def test_unknown_service_is_404(platform: Platform) -> None:
    resp = httpx.get(f"{platform.gateway}/api/v1/nosuch/things")
    assert resp.status_code == 404
    assert "nosuch" in resp.json()["error"]["message"]


def test_health_is_503_while_a_service_is_down(platform: Platform) -> None:
    platform.kill("registry")
    try:
        resp = httpx.get(f"{platform.gateway}/healthz")
        assert resp.status_code == 503
        assert resp.json()["services"]["registry"]["ready"] is False
        down = httpx.get(f"{platform.gateway}/api/v1/registry/projects")
        assert down.status_code == 503 and down.json()["error"]["code"] == "unavailable"
    finally:
        platform.start_service("registry")
        platform.wait_healthy()
    status = httpx.get(f"{platform.gateway}/api/v1/status").json()
    assert status["ready"] and status["event_log"]["connected"]
    assert set(status["services"]["registry"]) >= {"applied_seq", "lag"}


def test_openapi_merges_service_routes(platform: Platform) -> None:
    spec = httpx.get(f"{platform.gateway}/openapi.json").json()
    assert "/api/v1/registry/projects/{project}/runs" in spec["paths"]
    assert "/healthz" in spec["paths"]
    assert httpx.get(f"{platform.gateway}/docs").status_code == 200


def test_request_id_is_returned(platform: Platform) -> None:
    resp = httpx.get(f"{platform.gateway}/api/v1/registry/projects", headers={"X-Request-Id": "abc123"})
    assert resp.headers["x-request-id"] == "abc123"


@pytest.mark.parametrize(("host", "trusted"), [("127.0.0.1", True), ("::1", True), ("10.1.2.3", False),
                                               ("192.168.0.7", False), ("8.8.8.8", False), (None, False)])
def test_only_loopback_is_trusted(host: str | None, trusted: bool) -> None:
    assert _is_loopback(host) is trusted


async def test_remote_clients_are_refused() -> None:
    app = create_app(GatewaySettings(nats_url="nats://127.0.0.1:1"))
    transport = httpx.ASGITransport(app=app, client=("10.0.0.5", 5555))
    async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
        resp = await client.get("/api/v1/registry/projects")
    assert resp.status_code == 403
    assert resp.json()["error"]["code"] == "forbidden"
