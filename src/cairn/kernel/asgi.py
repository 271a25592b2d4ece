"""Answering from pure ASGI middleware (before any route runs): one JSON response, whole."""

from __future__ import annotations

from typing import Any

import orjson


async def send_json(send: Any, status: int, body: dict[str, Any]) -> None:
    payload = orjson.dumps(body)
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]})
    await send({"type": "http.response.body", "body": payload, "more_body": False})
