"""Secrets never stored with a notebook's kept outputs: a notebook's outputs are whatever a cell
printed, and people print tokens, keys and connection strings while they debug.

Two nets, both applied to every text in an output (streams, ``text/*`` and JSON data, tracebacks):

- the values of this process's environment variables whose names look secret (the same rule as the
  environment record, :func:`cairn.sdk.environment.looks_secret`), wherever they appear;
- well-known token shapes: Cairn tokens (``cairn_<id>_<secret>``), AWS access key ids, GitHub,
  GitLab, Slack, Hugging Face and OpenAI-style keys, JWTs, ``Bearer``/``Basic`` credentials,
  private key blocks, credentials in URLs (``scheme://user:secret@``), and the value in
  ``password=...``, ``token: ...``, ``api_key = "..."`` and the like.

What matches becomes ``[REDACTED]``. Binary outputs (images) are kept as they are.
"""

from __future__ import annotations

import os
import re
from typing import Any

from cairn.sdk.environment import looks_secret

REDACTED = "[REDACTED]"
MIN_ENV_SECRET = 6  # shorter values ("1", "true") would redact ordinary text

TOKEN_PATTERNS = [re.compile(p, re.DOTALL) for p in (
    r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----.*?-----END [A-Z0-9 ]*PRIVATE KEY-----",
    r"\bcairn_[0-9a-f]{12}_[A-Za-z0-9_-]{20,}",
    r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b",
    r"\bgh[pousr]_[A-Za-z0-9]{20,}\b",
    r"\bgithub_pat_[A-Za-z0-9_]{20,}\b",
    r"\bglpat-[A-Za-z0-9_-]{20,}\b",
    r"\bxox[abposr]-[A-Za-z0-9-]{10,}\b",
    r"\bhf_[A-Za-z0-9]{20,}\b",
    r"\bsk-[A-Za-z0-9_-]{20,}\b",
    r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}",
)]
# Keep the label, redact what follows it.
LABELLED = [
    re.compile(r"(?i)\b((?:bearer|basic|token)\s+)[A-Za-z0-9._~+/=-]{12,}"),
    re.compile(r"(?i)((?:password|passwd|pwd|secret|token|api[_-]?key|access[_-]?key|private[_-]?key|"
               r"client[_-]?secret|auth)[A-Za-z0-9_-]*[\"']?\s*[:=]\s*[\"']?)[^\s\"',;]{4,}"),
    re.compile(r"([a-z][a-z0-9+.-]*://[^\s:/@]+:)[^\s@/]+(@)"),
]


def _environment_secrets() -> list[str]:
    values = {v for k, v in os.environ.items() if looks_secret(k) and len(v) >= MIN_ENV_SECRET}
    return sorted(values, key=len, reverse=True)  # longest first: a secret containing another


def scrub_text(text: str) -> str:
    """``text`` with every secret it holds replaced by ``[REDACTED]``."""
    for value in _environment_secrets():
        text = text.replace(value, REDACTED)
    for pattern in TOKEN_PATTERNS:
        text = pattern.sub(REDACTED, text)
    for pattern in LABELLED:
        text = pattern.sub(lambda m: m.group(1) + REDACTED + (m.group(2) if m.lastindex and m.lastindex >= 2 else ""),
                           text)
    return text


def _scrub_value(value: Any) -> Any:
    if isinstance(value, str):
        return scrub_text(value)
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return scrub_text("".join(value))  # nbformat's multiline string: a key may span its lines
    if isinstance(value, list):
        return [_scrub_value(v) for v in value]
    if isinstance(value, dict):
        return {k: _scrub_value(v) for k, v in value.items()}
    return value


def scrub_output(output: dict[str, Any]) -> dict[str, Any]:
    """A notebook cell output (nbformat 4) with secrets scrubbed from its text; images untouched."""
    out = dict(output)
    if "text" in out:
        out["text"] = _scrub_value(out["text"])
    if "traceback" in out:
        out["traceback"] = _scrub_value(out["traceback"])
    if "evalue" in out:
        out["evalue"] = _scrub_value(out["evalue"])
    data = out.get("data")
    if isinstance(data, dict):
        out["data"] = {mime: _scrub_value(v) if mime.startswith("text/") or "json" in mime or "javascript" in mime
                       else v for mime, v in data.items()}
    return out
