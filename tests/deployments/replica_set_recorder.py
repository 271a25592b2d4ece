"""A real HTTP server on loopback that plays the scheduler's replica-set API (contract 3 of
issue 19) and records every call, for testing the deployments service's reconciler."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class ReplicaSetRecorder:
    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []
        self.sets: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self, status: int, body: dict[str, Any] | None) -> None:
                data = json.dumps(body or {}).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _record(self) -> dict[str, Any]:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length)) if length else None
                call = {"method": self.command, "path": self.path, "body": body,
                        "signed": bool(self.headers.get("X-Cairn-Identity"))}
                with recorder._lock:
                    recorder.calls.append(call)
                return call

            def do_PUT(self) -> None:  # noqa: N802 - http.server's naming
                call = self._record()
                with recorder._lock:
                    recorder.sets[self.path] = call["body"]
                self._answer(200, {"name": self.path.rsplit("/", 1)[-1], **call["body"], "running": []})

            def do_DELETE(self) -> None:  # noqa: N802
                self._record()
                with recorder._lock:
                    found = recorder.sets.pop(self.path, None)
                self._answer(200 if found else 404, {})

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def start(self) -> "ReplicaSetRecorder":
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def wait_for(self, method: str, path: str, *, replicas: int | None = None, timeout: float = 20.0) -> dict[str, Any]:
        """The first recorded call matching, waiting for it up to ``timeout``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                for call in self.calls:
                    if call["method"] == method and call["path"] == path and (
                            replicas is None or (call["body"] or {}).get("replicas") == replicas):
                        return call
            time.sleep(0.02)
        raise TimeoutError(f"no {method} {path} (replicas={replicas}) came; calls: {self.calls}")
