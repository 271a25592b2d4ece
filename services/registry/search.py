"""Run search: a small filter language compiled to SQL over the registry read model.

    params.lr = '0.01' and tags.team != 'vision' and status IN ('finished', 'failed')
    name LIKE 'bert-%' and params.epochs >= 10

Identifiers: ``params.<key>``, ``tags.<key>``, ``metrics.<key>`` (the run's last value, from the
registry's run_metrics table), ``attributes.<name>`` or a bare attribute
(status, name, experiment_id, run_id, created_at, started_at, ended_at, created_by). Keys with
spaces or dots go in backquotes. Comparisons are on strings, except ``< <= > >=`` with a number,
which compare numerically. ``!=`` on a param or tag needs the key to be present (as in MLflow).
"""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass, field
from typing import Any

from cairn.kernel.errors import InvalidInput
from cairn.protocol import CLIENT_START_TIME_TAG

ATTRIBUTES = {"status", "name", "experiment_id", "run_id", "id", "created_at", "started_at",
              "ended_at", "created_by", "updated_at"}
OPS = ("!=", "<=", ">=", "=", "<", ">")
MAX_PAGE = 1000

_TOKEN = re.compile(r"""
    \s*(?:
      (?P<str>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")
    | (?P<num>-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)
    | (?P<op>!=|<=|>=|=|<|>)
    | (?P<lp>\()|(?P<rp>\))|(?P<comma>,)
    | (?P<ident>(?:[A-Za-z_][A-Za-z0-9_]*\.)?(?:`[^`]+`|[A-Za-z0-9_\-./:]+))
    )""", re.VERBOSE)


@dataclass(frozen=True)
class Clause:
    kind: str   # "param" | "tag" | "attr" | "metric"
    key: str
    op: str
    value: Any
    pos: int = field(default=0, compare=False)  # where the condition starts, for the compiler's errors


@dataclass(frozen=True)
class _Token:
    kind: str   # str | num | op | lp | rp | comma | ident
    raw: str
    pos: int    # where it starts in the filter as given (0-based)


def _bad(message: str, pos: int, hint: str = "") -> InvalidInput:
    """A filter error that says where: people fix filters by position, as in a compiler."""
    return InvalidInput(f"{message} at position {pos}{hint}", details={"field": "filter", "position": pos})


def _tokens(text: str) -> list[_Token]:
    out, pos = [], 0
    while pos < len(text):
        if text[pos].isspace():
            pos += 1
            continue
        match = _TOKEN.match(text, pos)
        if not match or match.end() == pos:
            raise _bad(f"cannot read {text[pos:pos + 20]!r}", pos)
        kind = match.lastgroup or ""
        out.append(_Token(kind, match.group(kind), match.start(kind)))
        pos = match.end()
    return out


def _literal(token: _Token) -> Any:
    if token.kind == "str":
        return bytes(token.raw[1:-1], "utf-8").decode("unicode_escape")
    if token.kind == "num":
        return float(token.raw) if any(c in token.raw for c in ".eE") else int(token.raw)
    raise _bad(f"expected a quoted string or a number, got {token.raw!r}", token.pos)


def _identifier(raw: str) -> tuple[str, str] | None:
    """(kind, key) of a field name; None for an unknown attribute."""
    prefix, _, key = raw.partition(".") if "." in raw and not raw.startswith("`") else ("", "", raw)
    key = key.strip("`")
    if prefix in ("params", "param"):
        return "param", key
    if prefix in ("tags", "tag"):
        return "tag", key
    if prefix in ("metrics", "metric"):
        return "metric", key
    name = key if prefix in ("attributes", "attribute", "attr", "") else raw
    if name not in ATTRIBUTES:
        return None
    return "attr", "id" if name == "run_id" else name


# Order only: a run's start in epoch ms as its client gave it (the MLflow layer keeps an MLflow
# client's start_time in the CLIENT_START_TIME_TAG tag), else when Cairn started (or created) it;
# so runs made through MLflow and by Cairn's SDK sort together, and equal start times fall to the
# run_id ASC that every order ends with (MLflow's tie-break).
CLIENT_START_ORDER = ("client_start_time", "attributes.client_start_time")
_EPOCH_MS = "CAST((julianday(COALESCE(runs.started_at, runs.created_at)) - 2440587.5) * 86400000.0 AS INTEGER)"

_FIELDS_HINT = f"; use one of {', '.join(sorted(ATTRIBUTES))}, params.<key>, tags.<key> or metrics.<key>"


class _Cursor:
    """The tokens and where the parser is; ``end`` is the position just past the filter, where
    an incomplete filter is reported."""

    def __init__(self, text: str) -> None:
        self.tokens, self.i, self.end = _tokens(text), 0, len(text.rstrip())

    def peek(self) -> _Token | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def take(self, expected: str) -> _Token:
        """The next token; an incomplete filter says what was ``expected`` after the last one."""
        token = self.peek()
        if token is None:
            last = self.tokens[self.i - 1].raw if self.i else ""
            raise _bad(f"expected {expected} after {last!r}" if last else f"expected {expected}", self.end)
        self.i += 1
        return token


def _values(cur: _Cursor, op: str) -> list[Any]:
    """``( value [, value]... )`` after IN / NOT IN."""
    if cur.take("a parenthesised list").kind != "lp":
        raise _bad(f"{op} needs a parenthesised list, e.g. ('a', 'b')", cur.tokens[cur.i - 1].pos)
    first = cur.take("a value")
    if first.kind == "rp":
        raise _bad(f"{op} needs at least one value", first.pos)
    values = [_literal(first)]
    while True:
        token = cur.take("',' or ')'")
        if token.kind == "rp":
            return values
        if token.kind != "comma":
            raise _bad(f"expected ',' or ')' in the {op} list, got {token.raw!r}", token.pos)
        values.append(_literal(cur.take("a value")))


def parse_filter(text: str | None) -> list[Clause]:
    """Parse a filter string into clauses joined by AND; every error names its position."""
    if not text or not text.strip():
        return []
    cur = _Cursor(text)
    clauses = []
    while True:
        name = cur.take("a condition")
        if name.kind != "ident" or name.raw.upper() in ("AND", "OR"):
            raise _bad(f"expected a field name, got {name.raw!r}", name.pos)
        known = _identifier(name.raw)
        if known is None:
            raise _bad(f"unknown run attribute {name.raw!r}", name.pos, _FIELDS_HINT)
        field_kind, key = known
        token = cur.take("an operator")
        op = token.raw.upper()
        following = cur.peek()
        if token.kind == "ident" and op == "NOT" and following is not None and following.raw.upper() == "IN":
            op, cur.i = "NOT IN", cur.i + 1
        elif not (token.kind == "op" or op in ("LIKE", "ILIKE", "IN")):
            raise _bad(f"unknown operator {token.raw!r}; use = != < <= > >= LIKE ILIKE IN NOT IN", token.pos)
        value: Any = _values(cur, op) if op in ("IN", "NOT IN") else _literal(cur.take("a value"))
        clauses.append(Clause(field_kind, key, op, value, name.pos))
        joiner = cur.peek()
        if joiner is None:
            return clauses
        if joiner.raw.upper() != "AND":
            hint = "; OR is not supported, search twice instead" if joiner.raw.upper() == "OR" else ""
            raise _bad(f"expected AND between conditions, got {joiner.raw!r}", joiner.pos, hint)
        cur.i += 1
        if cur.peek() is None:
            raise _bad(f"expected a condition after {joiner.raw!r}", cur.end)


def _compare(column: str, op: str, value: Any, args: list[Any]) -> str:
    if op in ("IN", "NOT IN"):
        args.extend(str(v) for v in value)
        return f"{column} {op} ({', '.join('?' for _ in value)})"
    if op == "ILIKE":
        args.append(str(value))
        return f"LOWER({column}) LIKE LOWER(?)"
    if op in ("<", "<=", ">", ">=") and isinstance(value, (int, float)):
        args.append(value)
        return f"CAST({column} AS REAL) {op} ?"
    args.append(str(value))
    return f"{column} {op} ?"


def compile_search(project: str, *, experiment_ids: list[str] | None, filter_text: str | None,
                   include_archived: bool, order_by: list[str] | None, page_size: int,
                   page_token: str | None) -> tuple[str, list[Any], int]:
    """SQL selecting matching run ids, its arguments, and the offset it starts at. ``metrics.<key>``
    is the run's last value of that metric (``run_metrics.last_num``: finite values only)."""

    if not 1 <= page_size <= MAX_PAGE:
        raise InvalidInput(f"page_size must be between 1 and {MAX_PAGE}", details={"field": "page_size"})
    where: list[str] = ["runs.project = ?"]
    args: list[Any] = [project]
    if experiment_ids:
        where.append(f"runs.experiment_id IN ({', '.join('?' for _ in experiment_ids)})")
        args.extend(experiment_ids)
    if not include_archived:
        where.append("runs.archived = 0")
    for clause in parse_filter(filter_text):
        if clause.kind == "attr":
            where.append(_compare(f"runs.{clause.key}", clause.op, clause.value, args))
        elif clause.kind == "metric":
            if clause.op not in OPS or isinstance(clause.value, (str, list)):
                raise _bad(f"metrics.{clause.key} compares with = != < <= > >= and a number", clause.pos)
            args.extend([project, clause.key, float(clause.value)])
            # uncorrelated: SQLite evaluates it once, on the (project, key, last_num) index
            where.append("runs.id IN (SELECT m.run_id FROM run_metrics m WHERE m.project = ? AND m.key = ? "
                         f"AND m.last_num {clause.op} ?)")
        else:
            table = "run_params" if clause.kind == "param" else "run_tags"
            args.append(clause.key)
            cond = _compare("x.value", clause.op, clause.value, args)
            where.append(f"EXISTS (SELECT 1 FROM {table} x WHERE x.run_id = runs.id AND x.key = ? AND {cond})")
    joins, order = [], []
    for n, item in enumerate(order_by or ["created_at DESC"]):
        parts = item.strip().split()
        if not parts or len(parts) > 2 or (len(parts) == 2 and parts[1].upper() not in ("ASC", "DESC")):
            raise InvalidInput(f"cannot read order_by {item!r}; use '<field> [ASC|DESC]'",
                               details={"field": "order_by"})
        direction = parts[1].upper() if len(parts) == 2 else "ASC"
        if parts[0] in CLIENT_START_ORDER:
            joins.append(f"LEFT JOIN run_tags o{n} ON o{n}.run_id = runs.id AND o{n}.key = ?")
            args.insert(len(joins) - 1, CLIENT_START_TIME_TAG)
            order.append(f"COALESCE(CAST(o{n}.value AS INTEGER), {_EPOCH_MS}) {direction}")
            continue
        known = _identifier(parts[0])
        if known is None:
            raise InvalidInput(f"cannot order by {parts[0]!r}{_FIELDS_HINT}", details={"field": "order_by"})
        kind, key = known
        if kind == "attr":
            order.append(f"runs.{key} {direction}")
        elif kind == "metric":
            joins.append(f"LEFT JOIN run_metrics o{n} ON o{n}.project = runs.project AND o{n}.run_id = runs.id "
                         f"AND o{n}.key = ?")
            args.insert(len(joins) - 1, key)  # join args precede WHERE args
            order.append(f"(o{n}.last_num IS NULL), o{n}.last_num {direction}")
        else:
            table = "run_params" if kind == "param" else "run_tags"
            joins.append(f"LEFT JOIN {table} o{n} ON o{n}.run_id = runs.id AND o{n}.key = ?")
            args.insert(len(joins) - 1, key)  # join args precede WHERE args
            order.append(f"(o{n}.value IS NULL), CAST(o{n}.value AS REAL) {direction}, o{n}.value {direction}")
    order.append("runs.id ASC")
    offset = decode_token(page_token)
    sql = (f"SELECT runs.id FROM runs {' '.join(joins)} WHERE {' AND '.join(where)} "
           f"ORDER BY {', '.join(order)} LIMIT ? OFFSET ?")
    return sql, [*args, page_size + 1, offset], offset


def encode_token(offset: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"offset": offset}).encode()).decode()


def decode_token(token: str | None) -> int:
    if not token:
        return 0
    try:
        offset = int(json.loads(base64.urlsafe_b64decode(token.encode()))["offset"])
    except (ValueError, KeyError, TypeError):
        raise InvalidInput("page_token is not one this server issued", details={"field": "page_token"}) from None
    if offset < 0:
        raise InvalidInput("page_token is not one this server issued", details={"field": "page_token"})
    return offset
