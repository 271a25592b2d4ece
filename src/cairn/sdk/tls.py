"""One TLS context per process for the SDK's HTTP clients.

httpx builds a new SSL context, loading certifi's CA bundle, for every Client it makes: about 20 ms
of CPU each time (measured), paid by every ``cairn`` command and every run a job starts, even
against a plain-HTTP gateway. One context serves any number of clients; it is made on first use
and verifies exactly as httpx's default does (``SSL_CERT_FILE``/``SSL_CERT_DIR`` included)."""

from __future__ import annotations

import functools
import ssl

import httpx


@functools.cache
def tls_context() -> ssl.SSLContext:
    return httpx.create_ssl_context()
