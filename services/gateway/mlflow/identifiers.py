"""Identifiers that the MLflow layer puts into the services' paths, checked and escaped.

MLflow clients send run ids, model names, aliases and tag keys as JSON arguments; the layer turns
them into service paths (``/projects/<p>/runs/<run id>/tags/<key>``). Pasted in as they come, an
argument such as ``../../B/runs/RUN`` or ``M/aliases/production?`` would name another project's
run or smuggle in a query. So each identifier is checked against its own pattern (the one the
service that owns it applies, anchored at both ends) before it goes into a path, and is
percent-escaped as one segment. Identifiers that a service addresses by one path segment cannot
hold ``/`` (the service would split them), nor be ``.`` or ``..``. A value refused here is an MLflow
``INVALID_PARAMETER_VALUE`` (400) naming the parameter; nothing is sent to a service.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from cairn.kernel.ids import ALIAS_RE, MODEL_NAME_RE, NAME_RE, TOKEN_RE
from cairn.services.gateway.mlflow.errors import invalid

# The services' own rules (cairn.kernel.ids); tag keys without the '/' that KEY_RE allows, since a
# service addresses a tag key by one path segment.
_KEY = re.compile(r"[A-Za-z0-9_\-. :]{1,250}")
_LOGGED_MODEL_ID = re.compile(r"m-[0-9a-f]{32}-[0-9a-f]{8}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True)
class Identifier:
    """One kind of identifier: what it is called and the pattern its owner accepts."""

    what: str
    pattern: re.Pattern[str]
    rule: str

    def check(self, value: Any, parameter: str) -> str:
        """``value`` if it is one of these (whole string, no trailing newline), else 400."""
        if isinstance(value, str) and self.pattern.fullmatch(value) and value not in (".", ".."):
            return value
        raise invalid(f"Invalid value {_shown(value)} for parameter '{parameter}': {self.what} is {self.rule}")

    def segment(self, value: Any, parameter: str) -> str:
        """``value`` checked and escaped as one path segment."""
        return escape(self.check(value, parameter))


PROJECT = Identifier("a project name", NAME_RE,
                     "1-63 lowercase letters, digits, '-' and '_', starting with a letter or digit")
RUN_ID = Identifier("a run id", TOKEN_RE, "1-128 letters, digits, '-' or '_'")
EXPERIMENT_ID = Identifier("an experiment id", TOKEN_RE, "1-128 letters, digits, '-' or '_' ('0' for the default)")
MODEL_NAME = Identifier("a registered model name", MODEL_NAME_RE,
                        "1-250 letters, digits, spaces and '_-.:', not starting with '.', '-', ':' or a space")
TAG_KEY = Identifier("a tag key", _KEY, "1-250 letters, digits, spaces and '_-.:' (no '/'), and not '.' or '..'")
ALIAS = Identifier("an alias", ALIAS_RE, "a letter, then up to 63 letters, digits, '-' or '_'")
LOGGED_MODEL_ID = Identifier("a logged model id", _LOGGED_MODEL_ID, "m-<run id: 32 hex>-<8 hex>")


def escape(value: str) -> str:
    """One path segment, percent-escaped (``/`` included), for values that a service returned;
    a segment that is only dots is escaped too, so no client or proxy can read it as ``..``."""
    escaped = quote(value, safe="")
    return escaped.replace(".", "%2E") if escaped in (".", "..") else escaped


def artifact_path(value: Any, parameter: str = "path") -> str:
    """A relative artifact path (``model/MLmodel``), checked segment by segment (no empty
    segment, no ``.`` or ``..``, no control characters) and escaped segment by segment."""
    if not isinstance(value, str) or not value:
        raise invalid(f"Invalid value {_shown(value)} for parameter '{parameter}': an artifact path is needed")
    segments = value.split("/")
    for segment in segments:
        if segment in ("", ".", "..") or _CONTROL.search(segment):
            raise invalid(f"Invalid value {_shown(value)} for parameter '{parameter}': an artifact path is "
                          "'/'-separated names, none empty, '.' or '..', without control characters")
    return "/".join(quote(segment, safe="") for segment in segments)


def check_relative(value: str, parameter: str = "path") -> str:
    """``value`` if it is empty or a valid relative artifact path (see :func:`artifact_path`)."""
    if value:
        artifact_path(value, parameter)
    return value


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 120 else text[:117] + "..."


__all__ = ["ALIAS", "EXPERIMENT_ID", "LOGGED_MODEL_ID", "MODEL_NAME", "PROJECT", "RUN_ID", "TAG_KEY",
           "Identifier", "artifact_path", "check_relative", "escape"]
