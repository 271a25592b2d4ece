r"""Identifiers and names: random ids (URL- and NATS-subject-safe, sortable by creation time), and
the one place where the rules for names are written.

Each rule is a pattern body anchored two ways, because the two regex engines in play disagree on
``$``: Python's ``re`` (``*_RE``, for code) also matches ``$`` before a final newline, which let
``"bob\n"`` in as a user name, so it gets ``\A...\Z``; pydantic's ``pattern=`` (``*_PATTERN``,
for request models and OpenAPI) runs a Rust engine that reads ``$`` as the end of the text and has
no ``\Z``, so it gets ``^...$``.
"""

from __future__ import annotations

import os
import re
import time

from cairn.kernel.errors import InvalidInput


def anchored(body: str) -> re.Pattern[str]:
    """``body`` as a Python regex that must match the whole text (no final newline either)."""
    return re.compile(rf"\A(?:{body})\Z")


def field_pattern(body: str) -> str:
    """``body`` for pydantic's ``pattern=`` (Rust regex: ``$`` is the end of the text)."""
    return f"^(?:{body})$"


# Projects and users become NATS subject tokens: no dots, spaces, wildcards or '>'.
PROJECT_NAME = r"[a-z0-9][a-z0-9_-]{0,62}"
# Ids (runs, experiments, jobs, sweeps) and other subject tokens.
ID = r"[A-Za-z0-9_-]{1,128}"
# Param, tag and metric keys ("train/loss", "optimizer.lr").
KEY = r"[A-Za-z0-9_\-./ :]{1,250}"
# Models: like keys, but never a path: no '/', no '\\', not starting with '.' (so never '..').
MODEL_NAME = r"[A-Za-z0-9_][A-Za-z0-9_\-. :]{0,249}"
# Datasets: letters, digits, '-' and '_' (they name directories in `cairn datasets pull`).
DATASET_NAME = r"[A-Za-z0-9][A-Za-z0-9_-]{0,127}"
# Aliases of model versions ("production").
ALIAS = r"[A-Za-z][A-Za-z0-9_-]{0,63}"
DIGEST = r"[0-9a-f]{64}"
# Free-form names (runs, experiments) hold any text but control characters: C0, DEL, C1 and the
# Unicode line and paragraph separators (a name never spans lines or hides a terminal escape).
CONTROL_CHARS = r"\x00-\x1f\x7f-\x9f\u2028\u2029"
FREE_NAME = rf"[^{CONTROL_CHARS}]{{1,256}}"

NAME_RE = anchored(PROJECT_NAME)
TOKEN_RE = anchored(ID)
KEY_RE = anchored(KEY)
MODEL_NAME_RE = anchored(MODEL_NAME)
DATASET_NAME_RE = anchored(DATASET_NAME)
ALIAS_RE = anchored(ALIAS)
DIGEST_RE = anchored(DIGEST)
CONTROL_RE = re.compile(f"[{CONTROL_CHARS}]")

PROJECT_NAME_PATTERN = field_pattern(PROJECT_NAME)
ID_PATTERN = field_pattern(ID)
KEY_PATTERN = field_pattern(KEY)
MODEL_NAME_PATTERN = field_pattern(MODEL_NAME)
DATASET_NAME_PATTERN = field_pattern(DATASET_NAME)
DIGEST_PATTERN = field_pattern(DIGEST)
FREE_NAME_PATTERN = field_pattern(FREE_NAME)
FREE_TEXT_PATTERN = r"^[^\x00]*$"  # descriptions, tag values, messages: newlines yes, NUL no
URL_PATTERN = rf"^[^\s{CONTROL_CHARS}]+$"  # no spaces or control characters anywhere in a URL

# What each field pattern asks for, in words: a 422 says this instead of the regex.
PATTERN_RULES = {
    PROJECT_NAME_PATTERN: "1-63 lowercase letters, digits, '-' and '_', starting with a letter or digit",
    ID_PATTERN: "1-128 letters, digits, '-' and '_'",
    KEY_PATTERN: "1-250 letters, digits, spaces and '_-./:'",
    MODEL_NAME_PATTERN: "1-250 letters, digits, spaces and '_-.:', starting with a letter, digit or '_'",
    DATASET_NAME_PATTERN: "1-128 letters, digits, '-' and '_', starting with a letter or digit",
    DIGEST_PATTERN: "64 lowercase hex digits (a BLAKE3 digest)",
    FREE_NAME_PATTERN: "1-256 characters on one line, without control characters (newline, tab, NUL)",
    FREE_TEXT_PATTERN: "text without NUL characters",
    URL_PATTERN: "a URL without spaces or control characters",
}


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


def check_name(value: str, what: str, max_length: int = 256) -> str:
    """A free-form name (run, experiment): 1-``max_length`` characters, not blank, no control
    characters (newlines, tabs, NUL, escapes)."""
    if not isinstance(value, str) or not value.strip() or len(value) > max_length:
        raise InvalidInput(f"{what} must be 1-{max_length} characters, not blank", details={"field": what})
    bad = CONTROL_RE.search(value)
    if bad is not None:
        raise InvalidInput(f"{what} {value!r} contains the control character {bad.group()!r} at {bad.start()}; "
                           "names are one line of printable text", details={"field": what})
    return value


def check_text(value: str, what: str, max_length: int = 8000) -> str:
    """Free text (descriptions, tag values, messages): any characters, newlines included, but NUL."""
    if not isinstance(value, str) or len(value) > max_length:
        raise InvalidInput(f"{what} must be text of at most {max_length} characters", details={"field": what})
    if "\x00" in value:
        raise InvalidInput(f"{what} contains a NUL character at {value.index(chr(0))}; remove it",
                           details={"field": what})
    return value


def check_key(key: str, what: str) -> str:
    """A param, tag or metric key: 1-250 letters, digits, spaces and '_-./:'."""
    if not isinstance(key, str) or not KEY_RE.match(key):
        raise InvalidInput(f"{what} {key!r} is not valid: use 1-250 letters, digits, spaces and '_-./:'",
                           details={"field": what})
    return key


def check_model_name(name: str) -> str:
    """A model name: like a key, but no path characters ('/', '\\', a leading '.')."""
    if not isinstance(name, str) or not MODEL_NAME_RE.match(name):
        raise InvalidInput(f"model name {name!r} is not valid: use 1-250 letters, digits, spaces and '_-.:', "
                           "starting with a letter, digit or '_' (no '/' or '\\')", details={"field": "name"})
    return name



# Artifact names are relative paths under a run ("model/weights.bin"), as MLflow clients send them:
# any printable Unicode ("model(1).txt", "k=v.txt", "résumé.txt", "日本.txt", ".hidden", log_image's
# "dog%step%1..." and "dog+step+1..."), so that existing MLflow code logs what it logs. What keeps a
# name safe wherever it is written out (a client's download joins it to a local folder): '/'
# separates segments, none empty, '.' or '..' (no traversal, no absolute path); no backslash (a
# separator on Windows); no control, format or other non-printable character (NUL included); at
# most 250 characters (the event schema's bound).
ARTIFACT_NAME_MAX = 250
ARTIFACT_NAME_RULE = ("1-250 printable characters in '/'-separated segments (none empty, '.' or '..'), "
                      "no backslash and no control characters")


def artifact_name_problem(name: object) -> str | None:
    """Why ``name`` is not a valid artifact name, or None when it is one."""
    if not isinstance(name, str) or not name:
        return "it is empty"
    if len(name) > ARTIFACT_NAME_MAX:
        return f"it is longer than {ARTIFACT_NAME_MAX} characters"
    if "\\" in name:
        return "it holds a backslash"
    if any(not (char.isprintable() or char == " ") for char in name):
        return "it holds a control or non-printable character"
    if any(segment in ("", ".", "..") for segment in name.split("/")):
        return "a segment is empty, '.' or '..' (no absolute path, no '//', no traversal)"
    return None
