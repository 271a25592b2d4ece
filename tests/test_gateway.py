"""Gateway routing, health, status, OpenAPI and the loopback-only rule."""

from __future__ import annotations

import time

import loopback

from platform_harness import Platform


def test_unknown_service_is_404(platform: Platform) -> None:
    resp = loopback.get(f"{platform.gateway}/api/v1/nosuch/things", headers=platform.headers)
    assert resp.status_code == 404
    assert "nosuch" in resp.json()["error"]["message"]


def test_health_is_503_while_a_service_is_down(platform: Platform) -> None:
    platform.kill("registry")
    try:
        resp = loopback.get(f"{platform.gateway}/healthz")
        assert resp.status_code == 503
        assert resp.json()["ready"] is False
        status = loopback.get(f"{platform.gateway}/api/v1/status", headers=platform.headers).json()
        assert status["services"]["registry"]["ready"] is False
        down = loopback.get(f"{platform.gateway}/api/v1/registry/projects", headers=platform.headers)
        assert down.status_code == 503 and down.json()["error"]["code"] == "unavailable"
    finally:
        platform.start_service("registry")
        platform.wait_healthy()
    status = loopback.get(f"{platform.gateway}/api/v1/status", headers=platform.headers).json()
    assert status["ready"] and status["event_log"]["connected"]
    assert set(status["services"]["registry"]) >= {"applied_seq", "lag"}


def openapi_once_fetched(platform: Platform, unavailable: list[str]) -> dict:
    """The merged document once every running service's part arrived: a part not answered within
    2 s (a loaded machine, a service's first schema build) is asked again after 10 s."""
    deadline = time.monotonic() + 60
    while True:
        spec = loopback.get(f"{platform.gateway}/openapi.json", timeout=30).json()
        if spec.get("x-cairn-unavailable", []) == unavailable or time.monotonic() > deadline:
            return spec
        time.sleep(1)


def test_openapi_marks_a_stopped_service_unavailable_and_still_serves_the_rest(platform: Platform) -> None:
    platform.kill("lineage")
    try:
        spec = openapi_once_fetched(platform, ["lineage"])
        assert spec["x-cairn-unavailable"] == ["lineage"]
        assert "/api/v1/registry/projects/{project}/runs" in spec["paths"]
        assert not any(path.startswith("/api/v1/lineage/") for path in spec["paths"])
        assert loopback.get(f"{platform.gateway}/healthz", timeout=30).status_code == 503
    finally:
        platform.start_service("lineage")
        platform.wait_healthy()


def test_openapi_merges_service_routes(platform: Platform) -> None:
    spec = openapi_once_fetched(platform, [])
    assert "x-cairn-unavailable" not in spec
    assert "/api/v1/registry/projects/{project}/runs" in spec["paths"]
    assert "/healthz" in spec["paths"]
    assert loopback.get(f"{platform.gateway}/docs").status_code == 200


def test_request_id_is_returned(platform: Platform) -> None:
    resp = loopback.get(f"{platform.gateway}/api/v1/registry/projects",
                     headers={"X-Request-Id": "abc123", **platform.headers})
    assert resp.headers["x-request-id"] == "abc123"


def test_requests_without_a_valid_token_are_401(platform: Platform) -> None:
    url = f"{platform.gateway}/api/v1/registry/projects"
    for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": "Bearer cairn_000000000000_x"},
                    {"Authorization": "Basic abc"}):
        resp = loopback.get(url, headers=headers)
        assert resp.status_code == 401, headers
        assert resp.json()["error"]["code"] == "unauthorized"
    assert loopback.get(f"{platform.gateway}/healthz").status_code == 200
