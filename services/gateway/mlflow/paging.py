"""Offset page tokens for MLflow list/search endpoints that are answered from a whole listing."""

from __future__ import annotations

import base64
import json
from typing import Any

from cairn.services.gateway.mlflow.errors import invalid


def page_token_offset(token: str | None) -> int:
    if not token:
        return 0
    try:
        offset = int(json.loads(base64.urlsafe_b64decode(token.encode()))["offset"])
    except (ValueError, KeyError, TypeError):
        raise invalid("page_token is not one this server issued") from None
    if offset < 0:
        raise invalid("page_token is not one this server issued")
    return offset


def page(items: list[Any], size: int, offset: int) -> tuple[list[Any], str | None]:
    chosen = items[offset: offset + size]
    more = offset + size < len(items)
    token = base64.urlsafe_b64encode(json.dumps({"offset": offset + size}).encode()).decode() if more else None
    return chosen, token
