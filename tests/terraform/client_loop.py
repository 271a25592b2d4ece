"""A client that keeps writing and reading while machines are upgraded, and records every failure.

It plays the load balancer's part over the gateways the way nginx's ``proxy_next_upstream error``
does: a gateway that refuses the connection (nothing was sent) gets the request's next try on the
next gateway. Anything else counts as a failed request: an HTTP error, a request sent and never
answered, a read that does not show the write before it (each read names the write's
``Cairn-Seq`` as ``Cairn-Min-Seq``). No retries beyond that, so the count is honest.
"""

from __future__ import annotations

import itertools
import threading
import uuid
from dataclasses import dataclass, field

import httpx


@dataclass
class ClientLoop:
    gateways: list[str]
    token: str
    project: str
    run_id: str
    done: int = 0
    failures: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def _send(self, http: httpx.Client, turn: int, method: str, path: str, **kwargs: object) -> httpx.Response:
        last: Exception | None = None
        for offset in range(len(self.gateways)):
            base = self.gateways[(turn + offset) % len(self.gateways)]
            try:
                return http.request(method, base + path, **kwargs)  # type: ignore[arg-type]
            except httpx.ConnectError as refused:  # nothing sent: the next gateway, as a balancer does
                last = refused
        raise RuntimeError(f"every gateway refused the connection: {last}")

    def _round(self, http: httpx.Client, turn: int) -> None:
        path = f"/api/v1/registry/projects/{self.project}/runs/{self.run_id}"
        key, value = f"loop-{turn % 50}", str(turn)
        wrote = self._send(http, turn, "PUT", f"{path}/tags/{key}", json={"value": value},
                           headers={"Idempotency-Key": uuid.uuid4().hex})
        if wrote.status_code != 200:
            raise RuntimeError(f"write {turn}: {wrote.status_code} {wrote.text[:200]}")
        read = self._send(http, turn + 1, "GET", path, headers={"Cairn-Min-Seq": wrote.headers["Cairn-Seq"]})
        if read.status_code != 200:
            raise RuntimeError(f"read {turn}: {read.status_code} {read.text[:200]}")
        if read.json()["tags"].get(key) != value:
            raise RuntimeError(f"read {turn} does not show its write ({key}={value})")

    def _run(self) -> None:
        with httpx.Client(headers={"Authorization": f"Bearer {self.token}"}, timeout=30) as http:
            for turn in itertools.count():
                if self.stop.is_set():
                    return
                try:
                    self._round(http, turn)
                    self.done += 1
                except (httpx.HTTPError, RuntimeError, KeyError, ValueError) as err:
                    self.failures.append(f"{type(err).__name__}: {err}")

    def __enter__(self) -> "ClientLoop":
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        assert self._thread is not None
        self._thread.join(timeout=60)
