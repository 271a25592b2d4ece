"""Identifiers: random, URL- and NATS-subject-safe, sortable by creation time where that helps."""

from __future__ import annotations

import os
import re
import time

from cairn.kernel.errors import InvalidInput

# Names that become NATS subject tokens: no dots, spaces, wildcards or '>'.
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
TOKEN_RE = re.compile(r"^[A-Za-z0-9_-]{1,128}$")


def new_id() -> str:
    """A 32-hex-character id whose first 12 characters are the creation time in ms (sortable)."""
    ms = int(time.time() * 1000)
    return f"{ms:012x}{os.urandom(10).hex()}"


def event_id() -> str:
    return new_id()


def check_project_name(name: str) -> str:
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise InvalidInput(
            f"project name {name!r} is not valid: use 1-63 characters of lowercase letters, digits, "
            "'-' and '_', starting with a letter or digit",
            details={"field": "name"},
        )
    return name


def check_token(value: str, what: str) -> str:
    """Check that ``value`` can be a NATS subject token (ids, model names)."""
    if not isinstance(value, str) or not TOKEN_RE.match(value):
        raise InvalidInput(
            f"{what} {value!r} is not valid: use 1-128 characters of letters, digits, '-' and '_'",
            details={"field": what},
        )
    return value
