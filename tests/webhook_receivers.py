"""Real webhook receivers and a scripted DNS server, all on loopback, for the webhook tests."""

from __future__ import annotations

import json
import socket
import struct
import threading
import time
from collections import Counter
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def wait_until(predicate: Callable[[], object], timeout: float = 20.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


class Receiver:
    """A real HTTP server. Every request is recorded in ``requests`` (event, body, headers); the
    first ``fail`` requests, and any that ``status_for(headers)`` answers with a non-2xx, get that
    error; the others are recorded in ``received`` too and get 204."""

    def __init__(self, fail: int = 0, delay_s: float = 0.0, *, host: str = "127.0.0.1", port: int = 0,
                 status_for: Callable[[dict[str, str]], int] | None = None) -> None:
        self.fail = fail
        self.requests: list[tuple[dict, bytes, dict[str, str]]] = []
        self.received: list[tuple[dict, bytes, dict[str, str]]] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers["Content-Length"]))
                time.sleep(delay_s)
                headers = dict(self.headers)
                with receiver.lock:
                    receiver.requests.append((json.loads(body), body, headers))
                    status = status_for(headers) if status_for is not None else 204
                    if receiver.fail > 0:
                        receiver.fail -= 1
                        status = 500
                    if 200 <= status < 300:
                        receiver.received.append((json.loads(body), body, headers))
                self.send_response(status)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer((host, port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.port = self.server.server_port
        self.url = f"http://{host}:{self.port}/hook"

    @property
    def attempts(self) -> int:
        return len(self.requests)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Silent:
    """Accepts connections and never answers: a receiver that hangs every delivery."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.accepted: list[socket.socket] = []
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/hook"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted.append(conn)

    def close(self) -> None:
        self.sock.close()
        for conn in self.accepted:
            conn.close()


class ScriptedDns:
    """A DNS server on 127.0.0.1 (UDP). The n-th A query for a name is answered with
    ``scripts[name][n]`` (the last entry once the script runs out); AAAA queries get no records;
    unknown names get NXDOMAIN. ``lookups`` counts A queries per name."""

    def __init__(self) -> None:
        self.scripts: dict[str, list[str]] = {}
        self.lookups: Counter[str] = Counter()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                query, client = self.sock.recvfrom(512)
                self.sock.sendto(self._answer(query), client)
            except OSError:
                return  # closed

    def _answer(self, query: bytes) -> bytes:
        txid = query[:2]
        offset, labels = 12, []
        while query[offset]:
            labels.append(query[offset + 1:offset + 1 + query[offset]].decode())
            offset += 1 + query[offset]
        qtype = struct.unpack_from("!H", query, offset + 1)[0]
        question = query[12:offset + 5]
        name = ".".join(labels).lower()
        if name not in self.scripts:
            return txid + struct.pack("!HHHHH", 0x8183, 1, 0, 0, 0) + question  # NXDOMAIN
        records = []
        if qtype == 1:
            script = self.scripts[name]
            address = script[min(self.lookups[name], len(script) - 1)]
            self.lookups[name] += 1
            records.append(struct.pack("!HHHIH", 0xC00C, 1, 1, 0, 4) + socket.inet_aton(address))
        return txid + struct.pack("!HHHHH", 0x8180, 1, len(records), 0, 0) + question + b"".join(records)

    def close(self) -> None:
        self.sock.close()
