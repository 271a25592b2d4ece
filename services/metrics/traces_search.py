"""MLflow's trace filter syntax, evaluated over trace infos (and their spans for text and span
name filters): ``clause AND clause ...``, each ``<key> <op> <value>``.

Keys: ``status``/``state``, ``timestamp``/``timestamp_ms``/``request_time``,
``execution_time``/``execution_time_ms``, ``run_id``, ``name``, ``client_request_id`` (each also
with an ``attribute.``/``attributes.``/``trace.`` prefix), ``tags.<key>``, ``metadata.<key>``
(``request_metadata.``), ``span.name``, ``trace.text`` (any span's name or attributes, and the
previews). Operators ``= != < <= > >= LIKE ILIKE IN NOT IN``."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cairn.kernel.errors import InvalidInput

_TOKEN = re.compile(r"""\s*(?:(?P<str>'(?:[^'\\]|\\.|'')*'|"(?:[^"\\]|\\.)*")|(?P<list>\([^)]*\))|"""
                    r"""(?P<op>!=|<=|>=|=|<|>|\bNOT\s+IN\b|\bIN\b|\bNOT\s+LIKE\b|\bLIKE\b|\bILIKE\b)|"""
                    r"""(?P<and>\bAND\b)|(?P<num>-?\d+(?:\.\d+)?)|(?P<ident>(?:`[^`]+`|[\w.])+))""", re.I)
ATTRIBUTES = {"status": "state", "state": "state", "timestamp": "request_time_ms", "timestamp_ms": "request_time_ms",
              "request_time": "request_time_ms", "execution_time": "execution_ms", "execution_time_ms": "execution_ms",
              "execution_duration": "execution_ms", "run_id": "run_id", "name": "name",
              "client_request_id": "client_request_id", "text": "text", "request_id": "trace_id",
              "trace_id": "trace_id"}
NUMERIC = {"request_time_ms", "execution_ms"}


@dataclass(frozen=True)
class Clause:
    kind: str  # attribute | tag | metadata | span_name | text
    key: str
    op: str
    value: Any


def _unquote(text: str) -> str:
    body = text[1:-1]
    return body.replace("''", "'") if text[0] == "'" else body


def _key(ident: str) -> tuple[str, str]:
    parts = [p.strip("`") for p in re.findall(r"`[^`]+`|[^.]+", ident)]
    head, rest = parts[0].lower(), ".".join(parts[1:])
    if head in ("tags", "tag") and rest:
        return "tag", rest
    if head in ("metadata", "request_metadata") and rest:
        return "metadata", rest
    if head == "span" and rest.lower() == "name":
        return "span_name", "name"
    if head in ("attribute", "attributes", "trace") and rest.lower() in ATTRIBUTES:
        return ("text", "text") if rest.lower() == "text" else ("attribute", ATTRIBUTES[rest.lower()])
    if not rest and head in ATTRIBUTES and head != "text":
        return "attribute", ATTRIBUTES[head]
    raise InvalidInput(f"Invalid attribute key '{ident}' in the trace filter: use status, timestamp, "
                       "execution_time, run_id, name, tags.<key>, metadata.<key>, span.name or trace.text",
                       details={"field": "filter"})


def parse_filter(text: str | None) -> list[Clause]:
    """The clauses of a filter string; a malformed one is an InvalidInput saying where."""
    if not text or not text.strip():
        return []
    tokens = []
    pos = 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        m = _TOKEN.match(text, pos)
        if m is None or m.end() == pos:
            raise InvalidInput(f"Invalid trace filter {text!r} near {text[pos:pos + 20]!r}", details={"field": "filter"})
        group = m.lastgroup or ""
        tokens.append((group, m.group(group)))
        pos = m.end()
    clauses = []
    for i in range(0, len(tokens), 4):
        chunk = tokens[i:i + 3]
        if len(chunk) < 3 or chunk[0][0] != "ident" or chunk[1][0] != "op" or chunk[2][0] not in ("str", "num", "list"):
            raise InvalidInput(f"Invalid trace filter {text!r}: each clause is <key> <operator> <value>, "
                               "joined by AND", details={"field": "filter"})
        if i + 3 < len(tokens) and tokens[i + 3][0] != "and":
            raise InvalidInput(f"Invalid trace filter {text!r}: join clauses with AND", details={"field": "filter"})
        kind, key = _key(chunk[0][1])
        op = re.sub(r"\s+", " ", chunk[1][1].upper())
        raw_kind, raw = chunk[2]
        value: Any
        if raw_kind == "list":
            value = [_unquote(v.strip()) if v.strip()[:1] in "'\"" else v.strip()
                     for v in raw[1:-1].split(",") if v.strip()]
            if op not in ("IN", "NOT IN"):
                raise InvalidInput(f"Invalid trace filter {text!r}: a list needs IN or NOT IN", details={"field": "filter"})
        else:
            value = _unquote(raw) if raw_kind == "str" else float(raw)
            if op in ("IN", "NOT IN"):
                raise InvalidInput(f"Invalid trace filter {text!r}: IN takes a list: ('a', 'b')", details={"field": "filter"})
        if kind == "text" and op not in ("LIKE", "ILIKE"):
            raise InvalidInput("Invalid trace filter: trace.text takes LIKE or ILIKE", details={"field": "filter"})
        clauses.append(Clause(kind, key, op, value))
    return clauses


def _like(pattern: str, value: str, ignore_case: bool) -> bool:
    regex = "".join(".*" if c == "%" else "." if c == "_" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, value, re.S | (re.I if ignore_case else 0)) is not None


def compare(op: str, have: Any, want: Any) -> bool:
    """One operator; numbers compare as numbers, everything else as strings."""
    if have is None:
        return op in ("!=", "NOT IN", "NOT LIKE")
    if op in ("IN", "NOT IN"):
        return (str(have) in [str(w) for w in want]) == (op == "IN")
    if op in ("LIKE", "ILIKE", "NOT LIKE"):
        return _like(str(want), str(have), op == "ILIKE") != (op == "NOT LIKE")
    if isinstance(want, float):
        try:
            have = float(have)
        except (TypeError, ValueError):
            return False
    else:
        have = str(have)
    return {"=": have == want, "!=": have != want, "<": have < want, "<=": have <= want,
            ">": have > want, ">=": have >= want}[op]


def matches(info: dict[str, Any], clauses: list[Clause], spans: Callable[[], list[dict[str, Any]]]) -> bool:
    """Whether a trace passes every clause; ``spans`` is called only when a clause needs them."""
    for c in clauses:
        if c.kind == "tag":
            ok = compare(c.op, info["tags"].get(c.key), c.value)
        elif c.kind == "metadata":
            ok = compare(c.op, info["metadata"].get(c.key), c.value)
        elif c.kind == "span_name":
            names = [s.get("name") for s in spans()]
            ok = any(compare(c.op, n, c.value) for n in names) if c.op not in ("!=", "NOT IN", "NOT LIKE") \
                else all(compare(c.op, n, c.value) for n in names)
        elif c.kind == "text":
            haystack = [info.get("request_preview") or "", info.get("response_preview") or ""]
            for s in spans():
                haystack.append(s.get("name") or "")
                haystack.extend(str(v) for v in (s.get("attributes") or {}).values())
            ok = any(compare(c.op, h, c.value) for h in haystack)
        elif c.key == "run_id":
            runs = set(info.get("run_ids") or [])
            if info["metadata"].get("mlflow.sourceRun"):
                runs.add(info["metadata"]["mlflow.sourceRun"])
            ok = any(compare(c.op, r, c.value) for r in runs) if runs else compare(c.op, None, c.value)
        elif c.key == "name":
            ok = compare(c.op, info["tags"].get("mlflow.traceName"), c.value)
        else:
            ok = compare(c.op, info.get(c.key), c.value)
        if not ok:
            return False
    return True


ORDER_KEYS = {"timestamp": "request_time_ms", "timestamp_ms": "request_time_ms", "request_time": "request_time_ms",
              "execution_time": "execution_ms", "execution_time_ms": "execution_ms", "status": "state",
              "state": "state", "name": "name", "trace_id": "trace_id", "request_id": "trace_id"}


def parse_order(order_by: list[str]) -> list[tuple[str, bool]]:
    """``["timestamp DESC", ...]`` -> [(info field, descending)]; default newest first."""
    out = []
    for item in order_by or []:
        words = item.strip().split()
        if not words or len(words) > 2 or (len(words) == 2 and words[1].upper() not in ("ASC", "DESC")):
            raise InvalidInput(f"Invalid order_by clause {item!r}: use '<key> [ASC|DESC]'", details={"field": "order_by"})
        key = words[0].split(".", 1)[-1] if words[0].lower().startswith(("attribute.", "attributes.", "trace.")) else words[0]
        if key.lower() not in ORDER_KEYS:
            raise InvalidInput(f"Invalid order_by key {words[0]!r}: use one of {', '.join(sorted(ORDER_KEYS))}",
                               details={"field": "order_by"})
        out.append((ORDER_KEYS[key.lower()], len(words) == 2 and words[1].upper() == "DESC"))
    return out or [("request_time_ms", True)]
