"""Secrets shared by Cairn's services, kept in the NATS key-value bucket ``cairn-keys`` (which
agents, jobs and outside subscribers may not read: kernel/natsauth.py)."""

from __future__ import annotations

import secrets
from typing import Any

from cairn.protocol import KEY_BUCKET


async def bucket_key(js: Any, name: str, *, replicas: int = 1) -> bytes:
    """The 32-byte key ``name`` from ``cairn-keys``, made here if it is not there yet (concurrent
    makers agree: the first create wins). ``replicas``: as many as the event stream has, so the
    key is as available as the log."""
    from nats.js.errors import BucketNotFoundError, KeyWrongLastSequenceError

    try:
        kv = await js.key_value(KEY_BUCKET)
    except BucketNotFoundError:
        kv = await js.create_key_value(bucket=KEY_BUCKET, history=1, replicas=replicas,
                                       description="keys shared by Cairn's services")
    try:
        await kv.create(name, secrets.token_bytes(32))
    except KeyWrongLastSequenceError:
        pass  # made before (or by a concurrent start): use that one
    entry = await kv.get(name)
    if not entry.value or len(entry.value) < 32:
        raise RuntimeError(f"NATS key-value {KEY_BUCKET}/{name} holds no usable key")
    return bytes(entry.value)
