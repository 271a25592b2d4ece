"""Secret fields inside events of record, sealed so that a reader of the event stream cannot use them.

Outside systems may read a project's events straight from NATS (cairn.kernel.subscribers), and
the event log is replicated to every NATS node; a secret that an event must carry (a webhook's
signing secret, which the gateway needs again after a rebuild) travels sealed: AES-256-GCM under
a key in the ``cairn-keys`` key-value bucket, which only the services' NATS users may read, with
the aggregate's id as associated data (a sealed value copied into another webhook's event does
not open). A sealed value is the string ``sealed:v1:<base64url(nonce || ciphertext)>``; a value
without that prefix is one written before sealing and is read as it is.
"""

from __future__ import annotations

import base64
import secrets
from typing import Any

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from cairn.kernel.keybucket import bucket_key
from cairn.protocol import SEAL_KEY_NAME

PREFIX = "sealed:v1:"


def seal(key: bytes, plaintext: str, context: str) -> str:
    nonce = secrets.token_bytes(12)
    box = AESGCM(key).encrypt(nonce, plaintext.encode(), context.encode())
    return PREFIX + base64.urlsafe_b64encode(nonce + box).decode().rstrip("=")


def is_sealed(value: str) -> bool:
    return value.startswith(PREFIX)


def unseal(key: bytes, value: str, context: str) -> str:
    """The plaintext of a sealed value (``context`` as when it was sealed); an unsealed value as it is."""
    if not is_sealed(value):
        return value
    raw = value[len(PREFIX):]
    blob = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4))
    return AESGCM(key).decrypt(blob[:12], blob[12:], context.encode()).decode()


async def seal_key(js: Any, *, replicas: int = 1) -> bytes:
    """The sealing key from ``cairn-keys`` (made on first use)."""
    return await bucket_key(js, SEAL_KEY_NAME, replicas=replicas)
