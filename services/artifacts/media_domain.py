"""A run's media index as a pure aggregate (``media_set``, id = run id): commands check state and
return one event; ``evolve_media_set`` folds events into state. No I/O here.

An entry is one medium at one step of one key. Entries logged with Cairn's SDK are named
``<key>@<step>`` (a step omitted is the key's next one), so logging the same step again with the
same bytes is a no-op and with other bytes a conflict: media are immutable, like artifacts.
Entries that MLflow clients upload as run files are named after the file (MLflow's own names
carry a uuid), and their thumbnails may arrive as separate files (``...+compressed.webp``).
A key holds one kind of media (the web UI shows a key as one slider).
"""

from __future__ import annotations

import re
from typing import Any

from cairn.kernel.commands import Decision
from cairn.kernel.errors import Conflict, InvalidInput
from cairn.protocol import MEDIA_KINDS, MEDIA_LOGGED, MEDIA_THUMBNAIL_LOGGED, media_key_problem

State = dict[str, Any] | None
MEDIA_TYPE_RE = re.compile(r"^[a-z]+/[a-z0-9.+-]{1,100}$")
MAX_STEP = 2**53 - 1  # what JSON readers (the web UI) hold exactly
MEDIA_EVENT_SCHEMAS = ("media.logged.v1", "media.thumbnail_logged.v1")


def check_media(*, key: str, step: int | None, kind: str, media_type: str) -> None:
    """422 saying what to fix for a bad key, step, kind or media type."""
    problem = media_key_problem(key)
    if problem is not None:
        raise InvalidInput(f"media key {key!r} is not valid: {problem}", details={"field": "key"})
    if step is not None and not 0 <= step <= MAX_STEP:
        raise InvalidInput(f"step {step} is not valid: use a whole number from 0 to {MAX_STEP}",
                           details={"field": "step"})
    if kind not in MEDIA_KINDS:
        raise InvalidInput(f"media kind {kind!r} is not one of {', '.join(MEDIA_KINDS)}", details={"field": "kind"})
    if not MEDIA_TYPE_RE.match(media_type):
        raise InvalidInput(f"media type {media_type!r} is not valid: use e.g. image/png", details={"field": "media_type"})


def log_media(state: State, *, key: str, step: int | None, kind: str, digest: str,
              thumbnail_digest: str | None, media_type: str, size: int, width: int | None,
              height: int | None, entry: str | None = None, source: str = "sdk",
              name: str | None = None) -> Decision:
    """Index one medium; ``entry`` None names it ``<key>@<step>`` (step None: the key's next)."""
    check_media(key=key, step=step, kind=kind, media_type=media_type)
    current = state or {"entries": {}, "keys": {}}
    known = current["keys"].get(key)
    if known is not None and known["kind"] != kind:
        raise Conflict(f"media key {key!r} of this run holds {known['kind']} media; log {kind} media "
                       "under another key", details={"key": key, "kind": known["kind"]})
    if step is None:
        step = 0 if known is None else known["max_step"] + 1
    entry = entry or f"{key}@{step}"
    logged = current["entries"].get(entry)
    if logged is not None:
        if logged == digest:
            return None
        raise Conflict(f"media {key!r} at step {step} is already logged for this run with other bytes "
                       f"({logged}); media are immutable, log it at another step",
                       details={"key": key, "step": step, "digest": logged})
    return MEDIA_LOGGED, {"entry": entry, "key": key, "step": step, "kind": kind, "digest": digest,
                          "thumbnail_digest": thumbnail_digest, "media_type": media_type, "size": size,
                          "width": width, "height": height, "source": source, "name": name}


def log_thumbnail(state: State, *, entry: str, thumbnail_digest: str, media_type: str) -> Decision:
    """A thumbnail that arrived as a file of its own; a no-op when the entry already has it."""
    if thumbnail_digest in (state or {}).get("thumbnails", {}).get(entry, ()):
        return None
    return MEDIA_THUMBNAIL_LOGGED, {"entry": entry, "thumbnail_digest": thumbnail_digest,
                                    "media_type": media_type}


def evolve_media_set(state: State, event_type: str, data: dict[str, Any]) -> dict[str, Any]:
    current = state or {"entries": {}, "keys": {}, "thumbnails": {}}
    if event_type == MEDIA_LOGGED:
        known = current["keys"].get(data["key"])
        top = data["step"] if known is None else max(known["max_step"], data["step"])
        return {**current, "entries": {**current["entries"], data["entry"]: data["digest"]},
                "keys": {**current["keys"], data["key"]: {"kind": data["kind"], "max_step": top}}}
    if event_type == MEDIA_THUMBNAIL_LOGGED:
        thumbs = current.get("thumbnails", {})
        seen = [*thumbs.get(data["entry"], []), data["thumbnail_digest"]]
        return {**current, "thumbnails": {**thumbs, data["entry"]: seen}}
    return current


# --- MLflow's files -----------------------------------------------------------------------------

# log_image(key=, step=): images/<key with / as ~ (older: #)>+step+<n>+timestamp+<ms>+<uuid>.png,
# and its thumbnail ...+compressed.webp; older clients wrote % instead of +.
MLFLOW_IMAGE_RE = re.compile(
    r"^images/(?P<key>[^+%]+)(?P<sep>[+%])step(?P=sep)(?P<step>\d{1,15})(?P=sep)timestamp(?P=sep)\d+(?P=sep)"
    r"(?P<uuid>[0-9a-fA-F-]{1,64})(?P<thumb>(?P=sep)compressed)?\.(?P<ext>png|webp|jpe?g)$")
FIGURE_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".gif": "image/gif",
                ".svg": "image/svg+xml", ".html": "text/html", ".htm": "text/html"}


def may_be_media(name: str) -> bool:
    """Whether an MLflow run file's name alone leaves it possibly media (then its first bytes decide)."""
    ext = name.rpartition(".")[2].lower()
    return f".{ext}" in FIGURE_TYPES or ext in ("json", "parquet", "webp")


def mlflow_media(name: str, head: bytes) -> dict[str, Any] | None:
    """What an MLflow client's run file is as media (None: not media). ``head`` is the start of
    the file: a table (log_table) is a JSON file in pandas' ``split`` layout, recognised by its
    first bytes. Returns ``{entry, key, step, kind, media_type, thumbnail}`` (thumbnail True: the
    file is the thumbnail of ``entry``)."""
    match = MLFLOW_IMAGE_RE.match(name)
    if match is not None:
        key = match.group("key").replace("~", "/").replace("#", "/")
        if media_key_problem(key) is not None:
            return None
        entry = name[: match.start("thumb")] if match.group("thumb") else name.rsplit(".", 1)[0]
        ext = match.group("ext")
        media_type = "image/webp" if ext == "webp" else "image/jpeg" if ext.startswith("jp") else "image/png"
        return {"entry": entry, "key": key, "step": int(match.group("step")), "kind": "image",
                "media_type": media_type, "thumbnail": bool(match.group("thumb"))}
    if name.startswith(("images/", "table_images/")):  # parts of an image or a table, seen above or not media
        return None
    stem, dot, ext = name.rpartition(".")
    ext = f".{ext.lower()}" if dot else ""
    if media_key_problem(stem) is not None:
        return None
    if ext in FIGURE_TYPES:  # log_figure (or log_image with artifact_file=): one file, step 0
        kind = "html" if ext in (".html", ".htm") else "figure"
        return {"entry": name, "key": stem, "step": 0, "kind": kind, "media_type": FIGURE_TYPES[ext],
                "thumbnail": False}
    if ext == ".json" and re.match(rb'^\s*\{\s*"columns"\s*:\s*\[', head):  # log_table: orient="split"
        return {"entry": name, "key": stem, "step": 0, "kind": "table", "media_type": "application/json",
                "thumbnail": False}
    if ext == ".parquet" and head.startswith(b"PAR1"):
        return {"entry": name, "key": stem, "step": 0, "kind": "table",
                "media_type": "application/vnd.apache.parquet", "thumbnail": False}
    return None


def png_size(head: bytes) -> tuple[int, int] | None:
    """(width, height) from a PNG's header (None: not a PNG)."""
    if len(head) >= 24 and head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR":
        return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")
    return None
