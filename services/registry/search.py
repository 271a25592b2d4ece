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
from dataclasses import dataclass
from typing import Any

from cairn.kernel.errors import InvalidInput

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


def _tokens(text: str) -> list[tuple[str, str]]:
    out, pos = [], 0
    text = text.strip()
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if not match or match.end() == pos:
            raise InvalidInput(f"cannot read the filter at position {pos}: {text[pos:pos + 20]!r}",
                               details={"field": "filter"})
        kind = match.lastgroup or ""
        out.append((kind, match.group(kind)))
        pos = match.end()
        while pos < len(text) and text[pos].isspace():
            pos += 1
    return out


def _literal(kind: str, raw: str) -> Any:
    if kind == "str":
        return bytes(raw[1:-1], "utf-8").decode("unicode_escape")
    if kind == "num":
        return float(raw) if any(c in raw for c in ".eE") else int(raw)
    raise InvalidInput(f"expected a quoted string or a number, got {raw!r}", details={"field": "filter"})


def _identifier(raw: str) -> tuple[str, str]:
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
        raise InvalidInput(f"unknown run attribute {name!r}; use one of {', '.join(sorted(ATTRIBUTES))}, "
                           "params.<key> or tags.<key>", details={"field": "filter"})
    return "attr", "id" if name == "run_id" else name


def parse_filter(text: str | None) -> list[Clause]:
    """Parse a filter string into clauses joined by AND."""
    if not text or not text.strip():
        return []
    tokens = _tokens(text)
    clauses, i = [], 0
    while i < len(tokens):
        kind, raw = tokens[i]
        if kind != "ident":
            raise InvalidInput(f"expected a field name, got {raw!r}", details={"field": "filter"})
        field_kind, key = _identifier(raw)
        i += 1
        if i >= len(tokens):
            raise InvalidInput(f"filter ends after {raw!r}; expected an operator", details={"field": "filter"})
        kind, raw_op = tokens[i]
        op = raw_op.upper()
        if kind == "ident" and op == "NOT" and i + 1 < len(tokens) and tokens[i + 1][1].upper() == "IN":
            op, i = "NOT IN", i + 1
        elif not (kind == "op" or op in ("LIKE", "ILIKE", "IN")):
            raise InvalidInput(f"unknown operator {raw_op!r}; use = != < <= > >= LIKE ILIKE IN NOT IN",
                               details={"field": "filter"})
        i += 1
        if op in ("IN", "NOT IN"):
            if i >= len(tokens) or tokens[i][0] != "lp":
                raise InvalidInput(f"{op} needs a parenthesised list", details={"field": "filter"})
            values, i = [], i + 1
            while i < len(tokens) and tokens[i][0] != "rp":
                if tokens[i][0] != "comma":
                    values.append(_literal(*tokens[i]))
                i += 1
            if i >= len(tokens):
                raise InvalidInput("unclosed '(' in filter", details={"field": "filter"})
            value: Any = values
            i += 1
        else:
            if i >= len(tokens):
                raise InvalidInput(f"filter ends after {raw_op!r}; expected a value", details={"field": "filter"})
            value = _literal(*tokens[i])
            i += 1
        clauses.append(Clause(field_kind, key, op, value))
        if i < len(tokens):
            if tokens[i][1].upper() != "AND":
                raise InvalidInput(f"expected AND between conditions, got {tokens[i][1]!r}",
                                   details={"field": "filter"})
            i += 1
    return clauses


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
                raise InvalidInput(f"metrics.{clause.key} compares with = != < <= > >= and a number",
                                   details={"field": "filter"})
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
        kind, key = _identifier(parts[0])
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
