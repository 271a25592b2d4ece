"""The expression language of ``when:`` conditions and gates: parsed here into a small AST, never
handed to ``eval``, so a pipeline file cannot run code on the scheduler.

Grammar (lowest precedence first)::

    expr    := and ("or" and)*
    and     := not ("and" not)*
    not     := "not" not | compare
    compare := atom (("==" | "!=" | "<" | "<=" | ">" | ">=") atom)?
    atom    := NUMBER | STRING | true | false | null | ref | "(" expr ")"
    ref     := "params" "." NAME | "steps" "." NAME "." ("metrics" | "outputs") "." NAME

A NAME is letters, digits, ``_`` and ``-``; a name with other characters (``train/loss``) is
written ``metrics["train/loss"]``. Comparisons do not chain (``a < b < c`` is an error): one
reading of them is as good as another, so none is offered.
"""

from __future__ import annotations

import json
import operator
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Union

COMPARE_OPS = ("==", "!=", "<=", ">=", "<", ">")
NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
_ORDER = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}
_TOKEN = re.compile(r"""
    (?P<space>\s+)
  | (?P<number>-?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?)
  | (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
  | (?P<op>==|!=|<=|>=|<|>|\(|\)|\[|\]|\.)
  | (?P<name>[A-Za-z_][A-Za-z0-9_-]*)
""", re.VERBOSE)


class ExpressionError(ValueError):
    """An expression that does not parse; ``offset`` is the 0-based character where it went wrong."""

    def __init__(self, message: str, offset: int) -> None:
        super().__init__(message)
        self.message = message
        self.offset = offset


@dataclass(frozen=True)
class Literal:
    value: float | int | str | bool | None


@dataclass(frozen=True)
class Ref:
    """``params.NAME`` (step and kind None) or ``steps.STEP.KIND.NAME`` (KIND: metrics|outputs)."""

    name: str
    step: str | None = None
    kind: str | None = None


@dataclass(frozen=True)
class Compare:
    op: str
    left: Expr
    right: Expr


@dataclass(frozen=True)
class BoolOp:
    op: str  # "and" | "or"
    operands: tuple[Expr, ...]


@dataclass(frozen=True)
class Not:
    operand: Expr


Expr = Union[Literal, Ref, Compare, BoolOp, Not]


def _tokens(text: str) -> list[tuple[str, str, int]]:
    out: list[tuple[str, str, int]] = []
    pos = 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None:
            raise ExpressionError(f"unexpected character {text[pos]!r}", pos)
        kind = match.lastgroup or ""
        if kind != "space":
            out.append((kind, match.group(), pos))
        pos = match.end()
    out.append(("end", "", len(text)))
    return out


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = _tokens(text)
        self.i = 0

    def peek(self) -> tuple[str, str, int]:
        return self.tokens[self.i]

    def take(self) -> tuple[str, str, int]:
        token = self.tokens[self.i]
        self.i += 1
        return token

    def expect(self, value: str, what: str) -> None:
        kind, text, pos = self.take()
        if text != value or kind not in ("op", "name"):
            raise ExpressionError(f"expected {what}, found {_show(kind, text)}", pos)

    def is_word(self, word: str) -> bool:
        kind, text, _ = self.peek()
        return kind == "name" and text == word

    def parse_or(self) -> Expr:
        items = [self.parse_and()]
        while self.is_word("or"):
            self.take()
            items.append(self.parse_and())
        return items[0] if len(items) == 1 else BoolOp("or", tuple(items))

    def parse_and(self) -> Expr:
        items = [self.parse_not()]
        while self.is_word("and"):
            self.take()
            items.append(self.parse_not())
        return items[0] if len(items) == 1 else BoolOp("and", tuple(items))

    def parse_not(self) -> Expr:
        if self.is_word("not"):
            self.take()
            return Not(self.parse_not())
        left = self.parse_atom()
        kind, text, pos = self.peek()
        if kind == "op" and text in COMPARE_OPS:
            self.take()
            right = self.parse_atom()
            kind2, text2, pos2 = self.peek()
            if kind2 == "op" and text2 in COMPARE_OPS:
                raise ExpressionError("comparisons do not chain: write a < b and b < c", pos2)
            return Compare(text, left, right)
        return left

    def parse_atom(self) -> Expr:
        kind, text, pos = self.take()
        if kind == "number":
            return Literal(float(text) if any(c in text for c in ".eE") else int(text))
        if kind == "string":
            return Literal(_unquote(text, pos))
        if kind == "op" and text == "(":
            inner = self.parse_or()
            self.expect(")", "')'")
            return inner
        if kind == "name" and text in ("true", "false", "null"):
            return Literal({"true": True, "false": False, "null": None}[text])
        if kind == "name" and text == "params":
            return Ref(self.member())
        if kind == "name" and text == "steps":
            step = self.member()
            self.expect(".", "'.metrics' or '.outputs'")
            k, field, p = self.take()
            if field not in ("metrics", "outputs"):
                raise ExpressionError(f"expected 'metrics' or 'outputs' after steps.{step}, found "
                                      f"{_show(k, field)}", p)
            return Ref(self.member(), step=step, kind=field)
        if kind == "name":
            raise ExpressionError(f"unknown name {text!r}: use params.NAME, steps.STEP.metrics.NAME or "
                                  f"steps.STEP.outputs.NAME", pos)
        raise ExpressionError(f"expected a value, found {_show(kind, text)}", pos)

    def member(self) -> str:
        """``.NAME`` or ``["any name"]``."""
        kind, text, pos = self.take()
        if kind == "op" and text == "[":
            k, quoted, p = self.take()
            if k != "string":
                raise ExpressionError(f"expected a quoted name, found {_show(k, quoted)}", p)
            self.expect("]", "']'")
            name = _unquote(quoted, p)
            if not name:
                raise ExpressionError("a name cannot be empty", p)
            return name
        if kind != "op" or text != ".":
            raise ExpressionError(f"expected '.', found {_show(kind, text)}", pos)
        k, name, p = self.take()
        if k != "name":
            raise ExpressionError(f"expected a name, found {_show(k, name)}", p)
        return name


def _show(kind: str, text: str) -> str:
    return "the end" if kind == "end" else repr(text)


def _unquote(text: str, pos: int) -> str:
    """A quoted string's value: JSON's escapes, in double or single quotes."""
    if text[0] == "'":
        body, i = [], 1
        while i < len(text) - 1:
            if text[i] == "\\" and text[i + 1] == "'":
                body.append("'")
                i += 2
                continue
            if text[i] == "\\":
                body.append(text[i:i + 2])
                i += 2
                continue
            body.append('\\"' if text[i] == '"' else text[i])
            i += 1
        text = '"' + "".join(body) + '"'
    try:
        return str(json.loads(text))
    except ValueError:
        raise ExpressionError(f"bad escape in string {text}", pos) from None


def parse_expression(text: str) -> Expr:
    """Parse ``text`` into an AST; an :class:`ExpressionError` says where it went wrong."""
    if not text.strip():
        raise ExpressionError("the expression is empty", 0)
    parser = _Parser(text)
    tree = parser.parse_or()
    kind, value, pos = parser.peek()
    if kind != "end":
        raise ExpressionError(f"unexpected {value!r} after a complete expression", pos)
    return tree


def to_source(node: Expr) -> str:
    """The canonical text of ``node``; ``parse_expression(to_source(n)) == n``."""
    if isinstance(node, Literal):
        value = node.value
        if value is None or isinstance(value, bool):
            return {None: "null", True: "true", False: "false"}[value]
        if isinstance(value, float):
            return repr(value) if "e" in repr(value) or "." in repr(value) else repr(value) + ".0"
        if isinstance(value, int):
            return str(value)
        return json.dumps(value, ensure_ascii=False)
    if isinstance(node, Ref):
        tail = f".{node.name}" if NAME.fullmatch(node.name) else f"[{json.dumps(node.name)}]"
        if node.step is None:
            return "params" + tail
        head = f".{node.step}" if NAME.fullmatch(node.step) else f"[{json.dumps(node.step)}]"
        return f"steps{head}.{node.kind}{tail}"
    if isinstance(node, Compare):
        return f"{_operand(node.left)} {node.op} {_operand(node.right)}"
    if isinstance(node, Not):
        inner = node.operand
        return "not " + (to_source(inner) if isinstance(inner, (Literal, Ref, Not)) else f"({to_source(inner)})")
    parts = []
    for item in node.operands:
        text = to_source(item)
        parts.append(f"({text})" if isinstance(item, BoolOp) else text)
    return f" {node.op} ".join(parts)


def _operand(node: Expr) -> str:
    return to_source(node) if isinstance(node, (Literal, Ref)) else f"({to_source(node)})"


def references(node: Expr) -> list[Ref]:
    """Every reference in ``node``, in reading order (validation checks each one)."""
    if isinstance(node, Ref):
        return [node]
    if isinstance(node, Compare):
        return references(node.left) + references(node.right)
    if isinstance(node, Not):
        return references(node.operand)
    if isinstance(node, BoolOp):
        return [ref for item in node.operands for ref in references(item)]
    return []


def evaluate(node: Expr, params: Mapping[str, Any], steps: Mapping[str, Mapping[str, Mapping[str, Any]]]) -> Any:
    """The value of ``node`` given the run's params and earlier steps' ``metrics``/``outputs``.
    A missing value or a comparison of unlike types raises :class:`ExpressionError` (offset 0):
    a condition that cannot be decided must not be read as false."""
    if isinstance(node, Literal):
        return node.value
    if isinstance(node, Ref):
        source = params if node.step is None else steps.get(node.step, {}).get(node.kind or "", {})
        if node.name not in source:
            raise ExpressionError(f"{to_source(node)} has no value", 0)
        return source[node.name]
    if isinstance(node, Not):
        return not _truth(evaluate(node.operand, params, steps))
    if isinstance(node, BoolOp):
        if node.op == "and":
            return all(_truth(evaluate(item, params, steps)) for item in node.operands)
        return any(_truth(evaluate(item, params, steps)) for item in node.operands)
    left, right = evaluate(node.left, params, steps), evaluate(node.right, params, steps)
    if node.op in ("==", "!="):
        return (left == right) == (node.op == "==")
    numeric = (int, float)
    if not (isinstance(left, numeric) and isinstance(right, numeric)) and not (
            isinstance(left, str) and isinstance(right, str)):
        raise ExpressionError(f"cannot compare {left!r} {node.op} {right!r}", 0)
    return _ORDER[node.op](left, right)


def _truth(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ExpressionError(f"{value!r} is not true or false", 0)
    return value
