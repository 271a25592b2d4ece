"""Secrets shared by Cairn's services, kept in the NATS key-value bucket ``cairn-keys`` (which
agents, jobs and outside subscribers may not read: kernel/natsauth.py)."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from cairn.kernel.errors import nats_unavailable
from cairn.protocol import KEY_BUCKET

T = TypeVar("T")


WAIT_FOR_LEADER_S = 30.0


async def bucket_key(js: Any, name: str, *, replicas: int = 1, wait_for_leader_s: float = WAIT_FOR_LEADER_S) -> bytes:
    """The 32-byte key ``name`` from ``cairn-keys``, made here if it is not there yet (concurrent
    makers agree: the first create wins). ``replicas``: as many as the event stream has, so the
    key is as available as the log.

    In a cluster the bucket's stream may have no leader for a moment (just made by a service
    starting beside this one and still electing, or a node lost): the write and the read are
    asked again for up to ``wait_for_leader_s`` instead of failing the service's start (a fresh
    3-node cluster's scheduler once exited on "no response from stream" here)."""
    from nats.js.errors import BucketNotFoundError, KeyNotFoundError, KeyWrongLastSequenceError

    async def bucket() -> Any:
        try:
            return await js.key_value(KEY_BUCKET)
        except BucketNotFoundError:
            return await js.create_key_value(bucket=KEY_BUCKET, history=1, replicas=replicas,
                                             description="keys shared by Cairn's services")

    kv = await _once_led(bucket, wait_for_leader_s)
    try:
        await _once_led(lambda: kv.create(name, secrets.token_bytes(32)), wait_for_leader_s)
    except (KeyWrongLastSequenceError, KeyNotFoundError):
        # made before (or by a concurrent start, or by this call's own earlier try, which landed
        # after it timed out): use that one. nats-py's create says "not found" when the key's
        # last sequence was wrong but the replica it then asked has not applied the key yet.
        pass
    # the key exists now: a replica that has not applied it yet answers "not found" for a moment
    entry = await _once_led(lambda: kv.get(name), wait_for_leader_s, also=(KeyNotFoundError,))
    if not entry.value or len(entry.value) < 32:
        raise RuntimeError(f"NATS key-value {KEY_BUCKET}/{name} holds no usable key")
    return bytes(entry.value)


async def _once_led(call: Callable[[], Awaitable[T]], within_s: float,
                    also: tuple[type[Exception], ...] = ()) -> T:
    """``await call()``, asked again every quarter second while the stream (or the cluster's
    JetStream) has no leader ("no responders", "no response from stream", no answer in time, 503),
    or raises one of ``also``, for up to ``within_s``."""
    from nats.js.errors import ServiceUnavailableError

    retried: tuple[type[Exception], ...] = (*nats_unavailable(), ServiceUnavailableError, *also)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within_s
    while True:
        try:
            return await call()
        except retried:
            if loop.time() > deadline:
                raise
            await asyncio.sleep(0.25)
