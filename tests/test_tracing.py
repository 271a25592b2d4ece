"""Tracing: one request through the gateway gives one trace with spans from the gateway, the
service and the projection handler that applied the event (services run in this process here,
so one in-memory exporter sees them all)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import loopback
import uvicorn
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from cairn.kernel.telemetry import setup_tracing
from cairn.natsserver import free_port, start_nats_server, wait_for_tcp
from cairn.services.gateway.app import GatewaySettings
from cairn.services.gateway.app import create_app as create_gateway
from cairn.services.registry.app import RegistrySettings
from cairn.services.registry.app import create_app as create_registry


def _serve(app, port: int) -> tuple[uvicorn.Server, threading.Thread]:  # type: ignore[no-untyped-def]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_for_tcp("127.0.0.1", port, timeout=30)
    return server, thread


def test_one_request_one_trace_across_gateway_service_and_projection(tmp_path: Path) -> None:
    exporter = InMemorySpanExporter()
    setup_tracing("test", processor=SimpleSpanProcessor(exporter))
    nats, url = start_nats_server(tmp_path / "nats")
    reg_port, gw_port = free_port(), free_port()
    servers = []
    try:
        servers.append(_serve(create_registry(RegistrySettings(nats_url=url, data_dir=tmp_path / "d", port=reg_port)),
                              reg_port))
        servers.append(_serve(create_gateway(GatewaySettings(
            nats_url=url, data_dir=tmp_path / "d", port=gw_port, rate_limit=0,
            services={"registry": f"http://127.0.0.1:{reg_port}"})), gw_port))
        token_file = tmp_path / "d" / "admin.token"
        deadline = time.monotonic() + 30
        while not token_file.exists():
            assert time.monotonic() < deadline
            time.sleep(0.05)
        exporter.clear()
        resp = loopback.post(f"http://127.0.0.1:{gw_port}/api/v1/registry/projects", json={"name": "traced"},
                          headers={"Authorization": f"Bearer {token_file.read_text().strip()}"}, timeout=30)
        assert resp.status_code == 201, resp.text

        def trace_names() -> set[str]:
            spans = exporter.get_finished_spans()
            root = [s for s in spans if s.name == "gateway POST /api/v1/registry/projects"]
            if not root:
                return set()
            return {s.name for s in spans if s.context.trace_id == root[0].context.trace_id}

        deadline = time.monotonic() + 10
        while "registry projection project.created" not in trace_names():
            assert time.monotonic() < deadline, trace_names()
            time.sleep(0.05)
        names = trace_names()
        assert {"gateway POST /api/v1/registry/projects", "registry POST /projects",
                "registry projection project.created"} <= names
    finally:
        for server, _ in servers:
            server.should_exit = True
        for _, thread in servers:  # each app's shutdown (its NATS connection) ends before NATS goes
            thread.join(timeout=30)
        nats.terminate()
        nats.wait()
