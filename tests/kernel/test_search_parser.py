"""The run filter language, parsed without a server."""

from __future__ import annotations

import pytest

from cairn.kernel.errors import InvalidInput
from cairn.services.registry.search import Clause, decode_token, encode_token, parse_filter


def test_parses_clauses() -> None:
    assert parse_filter("params.lr = '0.1' and tags.`my team` != \"cv\" AND status IN ('a', 'b')") == [
        Clause("param", "lr", "=", "0.1"), Clause("tag", "my team", "!=", "cv"),
        Clause("attr", "status", "IN", ["a", "b"])]
    assert parse_filter("attributes.run_id = 'x' and params.epochs >= 10") == [
        Clause("attr", "id", "=", "x"), Clause("param", "epochs", ">=", 10)]
    assert parse_filter("name NOT IN ('a')") == [Clause("attr", "name", "NOT IN", ["a"])]
    assert parse_filter("  ") == []


@pytest.mark.parametrize("bad", ["lr = 1", "params.a", "params.a =", "params.a = 1 params.b = 2", "x ! 1"])
def test_rejects_bad_filters(bad: str) -> None:
    with pytest.raises(InvalidInput):
        parse_filter(bad)


@pytest.mark.parametrize(("bad", "message", "position"), [
    ("params.lr = 0.01 and", "expected a condition after 'and'", 20),
    ("params.lr = 0.01 AND  ", "expected a condition after 'AND'", 20),
    ("params.lr = 0.01 or", "expected AND between conditions, got 'or'", 17),
    ("params.lr = 0.01 or name = 'x'", "OR is not supported", 17),
    ("params.lr =", "expected a value after '='", 11),
    ("params.lr", "expected an operator after 'params.lr'", 9),
    ("name = 'a' and and name = 'b'", "expected a field name, got 'and'", 15),
    ("name IN ('a'", "expected ',' or ')' after \"'a'\"", 12),
    ("name IN ('a' 'b')", "expected ',' or ')' in the IN list, got \"'b'\"", 13),
    ("name IN ()", "IN needs at least one value", 9),
    ("name IN 'a'", "IN needs a parenthesised list", 8),
    ("name NOT IN", "expected a parenthesised list after 'IN'", 11),
    ("  nonsense = 1", "unknown run attribute 'nonsense'", 2),
    ("name ~ 1", "cannot read '~ 1'", 5),
    ("name LIKES 'a'", "unknown operator 'LIKES'", 5),
    ("name = and", "expected a quoted string or a number, got 'and'", 7),
])
def test_every_filter_error_says_what_was_expected_and_where(bad: str, message: str, position: int) -> None:
    with pytest.raises(InvalidInput) as raised:
        parse_filter(bad)
    assert message in str(raised.value) and f"at position {position}" in str(raised.value), str(raised.value)
    assert raised.value.details == {"field": "filter", "position": position}


def test_page_tokens_round_trip() -> None:
    assert decode_token(encode_token(300)) == 300
    assert decode_token(None) == 0
    with pytest.raises(InvalidInput):
        decode_token("!!")
