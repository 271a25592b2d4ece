"""Request paths are checked once, at the door, before any routing.

Every layer behind the gateway reads a path its own way: the gateway's router sees it decoded
once, the forwarding client collapses ``..`` and takes a decoded ``?`` as the start of a query, and
a service decodes again. A path that means one thing to the router and another to a service lets a
caller be authorized for one project and act in another. So a path whose segments, decoded as many
times as anyone might decode them, contain a dot segment, a slash or backslash, ``?``, ``#`` or a
control character, or that has an empty segment, is refused with 400 before anything reads it.
What passes has one meaning at every hop, and :func:`encode_path` forwards exactly that meaning.

A single trailing slash is dropped (``/x/`` is ``/x``), once, here: no route depends on it and no
redirect leaks a service's address.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote, unquote_to_bytes

from cairn.kernel.asgi import send_json
from cairn.kernel.errors import BadRequest

MAX_DECODES = 4  # more layers of percent-encoding than this is not a path anyone means
MLFLOW_PREFIXES = (b"/api/2.0/", b"/ajax-api/2.0/", b"/mlflow/")
FORWARD_SAFE = "!$&'()*+,;=:@"  # sub-delims, ':' and '@' stay as they are in a path segment
# MLflow's artifact proxy: what follows is <project>/<run id>/artifacts/<name>, and the name is
# data (any printable Unicode, "%" included: MLflow 3.6's log_image names its files
# "dog%step%1%timestamp%17..."). Its route never forwards this raw path: it takes the router's
# once-decoded path apart, checks project and run id against their patterns, and sends the name to
# the artifacts service escaped segment by segment ("%" as "%25", encoded=True), which decodes it
# exactly once. No hop decodes these segments twice, so they are checked decoded once: a literal
# "%17" in a name is three characters, not a control character.
NAME_TAIL = re.compile(rb"^(?:/mlflow/[^/]+)?/(?:api|ajax-api)/2\.0/mlflow-artifacts/artifacts/")
_FORBIDDEN = {"/": "an encoded slash", "\\": "a backslash", "?": "an encoded '?'", "#": "an encoded '#'"}


def check_path(raw: bytes) -> None:
    """Refuse (``BadRequest``, 400) a raw request path (ASGI ``raw_path``, still percent-encoded)
    that could be read two ways: a segment that is ``.`` or ``..``, or holds ``/``, ``\\``, ``?``,
    ``#`` or a control character, once percent-decoded (repeatedly, so ``%252e`` counts as a dot);
    an empty segment (``//``); a segment that is not UTF-8."""
    if not raw.startswith(b"/"):
        raise BadRequest("the request path must start with '/'")
    if raw == b"/":
        return
    tail = NAME_TAIL.match(raw)
    literal_from = raw[:tail.end()].count(b"/") if tail else None  # first segment of the name tail
    for number, segment in enumerate(raw[1:].split(b"/"), start=1):
        _check_segment(segment, number, 1 if literal_from is not None and number >= literal_from else MAX_DECODES)


def encode_path(path: str) -> str:
    """A checked, decoded path (as the router hands it over) percent-encoded for a service, each
    segment on its own, so that the service decodes exactly ``path``; refuses what
    :func:`check_path` refuses, should a caller ever skip the check."""
    encoded = "/".join(quote(segment, safe=FORWARD_SAFE) for segment in path.split("/"))
    check_path(b"/" + encoded.encode("ascii"))
    return encoded


def _check_segment(segment: bytes, number: int, decodes: int = MAX_DECODES) -> None:
    shown = segment.decode("latin-1")[:80]
    decoded = _fully_decoded(segment, number, shown, decodes)
    if decoded == "":
        raise BadRequest(f"the request path has an empty segment (segment {number}, '//'); remove the extra '/'",
                         details={"segment": number})
    if decoded in (".", ".."):
        raise BadRequest(f"the request path has a dot segment {shown!r} (segment {number}, {decoded!r} decoded);"
                         " name the resource directly", details={"segment": number})
    for char in decoded:
        what = _FORBIDDEN.get(char) or (f"a control character ({ord(char):#04x})"
                                        if ord(char) < 0x20 or ord(char) == 0x7F else None)
        if what is not None:
            raise BadRequest(f"the request path has {what} in segment {number} ({shown!r}); "
                             "path segments cannot contain '/', '\\', '?', '#' or control characters, "
                             "even percent-encoded", details={"segment": number})


def _fully_decoded(segment: bytes, number: int, shown: str, decodes: int = MAX_DECODES) -> str:
    for _ in range(decodes):
        once = unquote_to_bytes(segment)
        if once == segment:
            break
        segment = once
    else:
        if decodes == MAX_DECODES and unquote_to_bytes(segment) != segment:
            raise BadRequest(f"segment {number} of the request path ({shown!r}) is percent-encoded more than "
                             f"{MAX_DECODES} times", details={"segment": number})
    try:
        return segment.decode("utf-8")
    except UnicodeDecodeError:
        raise BadRequest(f"segment {number} of the request path ({shown!r}) is not UTF-8 once decoded",
                         details={"segment": number}) from None


class PathGuard:
    """Pure ASGI middleware: :func:`check_path` on every HTTP request, before routing; a refused
    path gets 400 in Cairn's error shape, or MLflow's on the MLflow routes (its clients read
    ``error_code``). A single trailing slash is dropped from ``path`` and ``raw_path``."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        raw: bytes = scope.get("raw_path") or scope["path"].encode("utf-8")
        if len(raw) > 1 and raw.endswith(b"/") and scope["path"].endswith("/"):
            raw = raw[:-1]
            scope = {**scope, "raw_path": raw, "path": scope["path"][:-1]}
        try:
            check_path(raw)
        except BadRequest as err:
            await _refuse(err, raw.startswith(MLFLOW_PREFIXES), send)
            return
        await self.app(scope, receive, send)


async def _refuse(err: BadRequest, mlflow: bool, send: Any) -> None:
    body = {"error_code": "BAD_REQUEST", "message": err.message} if mlflow else err.to_body()
    await send_json(send, err.status, body)
