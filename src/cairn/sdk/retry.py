"""How long the SDK waits before trying a request again.

A 429 says exactly how long to wait: the gateway's ``Retry-After`` header (whole seconds, as HTTP
has it) and, more precisely, ``details.retry_after_s`` in the error body (the bucket's refill time,
often milliseconds). We wait that long plus a little jitter, so that many clients refused at the same
moment do not all come back at the same moment and get refused again. Other transient answers
(502, 503, 504, connection errors) back off exponentially from 0.1 s, also with jitter.

Waits are bounded: one wait is at most :data:`MAX_WAIT_S` (a server asking for more is not
retried: the caller gets the 429), and the callers bound the number of tries.
"""

from __future__ import annotations

import random
from typing import Any

import httpx

MAX_WAIT_S = 60.0  # longest single wait a 429 may ask for; above it the 429 goes to the caller
JITTER = 0.1  # up to 10 % more than asked, spread over clients


def retry_after(resp: httpx.Response) -> float | None:
    """Seconds a 429 (or 503) asks us to wait: the body's ``retry_after_s`` when present (precise),
    else the ``Retry-After`` header (whole seconds); None when the answer names no wait."""
    try:
        details: Any = resp.json()["error"].get("details") or {}
        precise = details.get("retry_after_s")
        if precise is not None:
            return max(0.0, float(precise))
    except (ValueError, KeyError, TypeError, AttributeError):
        pass
    header = resp.headers.get("Retry-After", "")
    try:
        return max(0.0, float(header))
    except ValueError:
        return None  # an HTTP date or nothing: the caller backs off on its own schedule


def wait_for(resp: httpx.Response | None, backoff: float, rng: random.Random | None = None) -> float | None:
    """How long to sleep before the next try after ``resp`` (None: a transport error), given the
    caller's current exponential ``backoff``; None when the answer should not be retried (a 429
    asking for more than :data:`MAX_WAIT_S`)."""
    draw = (rng or random).random
    asked = retry_after(resp) if resp is not None and resp.status_code in (429, 503) else None
    if asked is None:
        return backoff * (1 + JITTER * draw())
    if asked > MAX_WAIT_S:
        return None
    return asked * (1 + JITTER * draw()) + 0.001
