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


def test_page_tokens_round_trip() -> None:
    assert decode_token(encode_token(300)) == 300
    assert decode_token(None) == 0
    with pytest.raises(InvalidInput):
        decode_token("!!")
