"""Moving blob bytes: presigned transfers straight to the bucket, and a bounded pool for many files.

The artifact service answers a *plan* for each transfer (services/artifacts/api_presigned.py):
on S3 it gives presigned URLs, so the bytes go between this process and the bucket once instead of
through the gateway and the service; on the file system it says ``proxy`` and the bytes go
through the gateway as before. The answer does not change while a client lives, so it is asked
once and remembered. Presigned requests carry no Cairn credentials (the URL's signature is the
authorization), so they use their own plain HTTP client.

Many small files are sent or fetched by a pool of ``WORKERS`` threads: each transfer waits mostly
on a round trip, and a bounded pool keeps the server's and the disk's load bounded too.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import httpx

from cairn.sdk.tls import tls_context

CHUNK = 1 << 20
WORKERS = 8  # files in flight at once (uploads and downloads of many files)
PART_WORKERS = 4  # parts of one large presigned upload in flight at once
RETRIED = (500, 502, 503, 504)
T = TypeVar("T")


def file_chunks(path: Path, progress: Callable[[int], None] | None, start: int = 0,
                length: int | None = None) -> Iterator[bytes]:
    """``length`` bytes of ``path`` from ``start`` (to the end when None), in ``CHUNK`` pieces."""
    with open(path, "rb") as f:
        f.seek(start)
        left = length
        while left is None or left > 0:
            chunk = f.read(CHUNK if left is None else min(CHUNK, left))
            if not chunk:
                break
            if left is not None:
                left -= len(chunk)
            if progress is not None:
                progress(len(chunk))
            yield chunk


def retrying(attempts: int, send: Callable[[], httpx.Response]) -> httpx.Response:
    """``send()`` again (with backoff) on a transport error or a 5xx, up to ``attempts`` more times."""
    delay = 0.2
    for attempt in range(attempts + 1):
        try:
            resp = send()
            if resp.status_code not in RETRIED or attempt == attempts:
                return resp
        except httpx.TransportError:
            if attempt == attempts:
                raise
        time.sleep(delay)
        delay = min(delay * 2, 2.0)
    raise AssertionError("unreachable")


def in_pool(items: Iterable[T], work: Callable[[T], Any], workers: int = WORKERS) -> None:
    """Run ``work`` on every item with at most ``workers`` at once; the first error is raised
    once the transfers already started have finished (none is left half-written)."""
    items = list(items)
    if len(items) <= 1 or workers <= 1:
        for item in items:
            work(item)
        return
    with ThreadPoolExecutor(max_workers=min(workers, len(items)), thread_name_prefix="cairn-transfer") as pool:
        futures = [pool.submit(work, item) for item in items]
        errors = [f.exception() for f in futures]
    for err in errors:
        if err is not None:
            raise err


def locked(progress: Callable[[int, int], None] | None, total: int) -> Callable[[int], None] | None:
    """``progress(n, total)`` made safe to call from several transfer threads."""
    if progress is None:
        return None
    lock = threading.Lock()

    def advance(n: int) -> None:
        with lock:
            progress(n, total)

    return advance


class Direct:
    """Transfers with presigned URLs (no Cairn headers: the signature is the authorization)."""

    def __init__(self, retries: int) -> None:
        self.http = httpx.Client(timeout=httpx.Timeout(60.0, write=None), verify=tls_context(),
                                 limits=httpx.Limits(max_connections=WORKERS * PART_WORKERS))
        self.retries = retries

    def close(self) -> None:
        self.http.close()

    def _put(self, url: str, path: Path, start: int, length: int, progress: Callable[[int], None] | None) -> str:
        def send() -> httpx.Response:
            return self.http.put(url, content=file_chunks(path, progress, start, length),
                                 headers={"Content-Length": str(length)})

        resp = retrying(self.retries, send)
        if resp.status_code >= 400:
            raise httpx.HTTPStatusError(f"the bucket refused the upload ({resp.status_code}): {resp.text[:300]}",
                                        request=resp.request, response=resp)
        return resp.headers.get("ETag", "")

    def upload(self, plan: dict[str, Any], path: Path, size: int,
               progress: Callable[[int], None] | None) -> dict[str, Any]:
        """Send the file as the plan says; returns the commit's body."""
        commit: dict[str, Any] = {"token": plan["token"]}
        if "url" in plan:
            self._put(plan["url"], path, 0, size, progress)
            return commit
        etags: dict[int, str] = {}

        def one(part: dict[str, Any]) -> None:
            start = (part["number"] - 1) * plan["part_size"]
            etags[part["number"]] = self._put(part["url"], path, start, part["size"], progress)

        in_pool(plan["parts"], one, PART_WORKERS)
        commit["upload_id"] = plan["upload_id"]
        commit["parts"] = [{"number": n, "etag": etags[n]} for n in sorted(etags)]
        return commit

    def download(self, url: str, out: Any, progress: Callable[[int], None] | None) -> None:
        """Stream a presigned GET into the open file ``out``."""
        with self.http.stream("GET", url) as resp:
            if resp.status_code >= 400:
                resp.read()
                raise httpx.HTTPStatusError(f"the bucket refused the download ({resp.status_code}): "
                                            f"{resp.text[:300]}", request=resp.request, response=resp)
            for chunk in resp.iter_raw(CHUNK):
                out.write(chunk)
                if progress is not None:
                    progress(len(chunk))

