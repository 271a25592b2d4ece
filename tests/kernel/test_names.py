"""The shared name rules (cairn.kernel.ids), as properties: whatever a rule accepts has no control
character and no final newline, Python's and pydantic's anchoring of a rule accept the same texts,
model names are never paths, and free text keeps newlines but never NUL."""

from __future__ import annotations

import unicodedata
from typing import Annotated

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import Field, TypeAdapter, ValidationError

from cairn.kernel import ids
from cairn.kernel.errors import InvalidInput

RULES = {  # name -> (pattern body, Python regex, pydantic pattern)
    "project/user": (ids.PROJECT_NAME, ids.NAME_RE, ids.PROJECT_NAME_PATTERN),
    "id": (ids.ID, ids.TOKEN_RE, ids.ID_PATTERN),
    "key": (ids.KEY, ids.KEY_RE, ids.KEY_PATTERN),
    "model": (ids.MODEL_NAME, ids.MODEL_NAME_RE, ids.MODEL_NAME_PATTERN),
    "dataset": (ids.DATASET_NAME, ids.DATASET_NAME_RE, ids.DATASET_NAME_PATTERN),
    "digest": (ids.DIGEST, ids.DIGEST_RE, ids.DIGEST_PATTERN),
    "free name": (ids.FREE_NAME, ids.anchored(ids.FREE_NAME), ids.FREE_NAME_PATTERN),
}
CONTROLS = ["\n", "\r", "\t", "\x00", "\x1b", "\x7f", "\x85", "\u2028", "\u2029"]
TRICKY = list("abzAZ09_-./ :\\é日") + CONTROLS


def texts_near(body: str) -> st.SearchStrategy[str]:
    """Texts a rule accepts, the same with a control character added somewhere (a final newline
    most of all), and texts from the characters that names tend to trip on."""
    valid = st.from_regex(ids.anchored(body), fullmatch=True)
    spliced = st.tuples(valid, st.sampled_from(CONTROLS), st.integers(0, 300)).map(
        lambda t: t[0][:t[2]] + t[1] + t[0][t[2]:])
    return st.one_of(valid, valid.map(lambda s: s + "\n"), spliced,
                     st.text(alphabet=st.sampled_from(TRICKY), max_size=12), st.text(max_size=12))


def is_control(ch: str) -> bool:
    return unicodedata.category(ch) in ("Cc", "Zl", "Zp")


def pydantic_accepts(pattern: str, text: str) -> bool:
    try:
        TypeAdapter(Annotated[str, Field(pattern=pattern)]).validate_python(text)
    except ValidationError:
        return False
    return True


@pytest.mark.parametrize("rule", sorted(RULES))
def test_no_accepted_name_has_a_control_character_and_both_engines_agree(rule: str) -> None:
    body, python_re, field_pattern = RULES[rule]

    @settings(max_examples=300, deadline=None)
    @given(texts_near(body))
    def check(text: str) -> None:
        accepted = python_re.match(text) is not None
        assert accepted == pydantic_accepts(field_pattern, text)
        if accepted:
            assert not any(is_control(ch) for ch in text) and not text.endswith("\n")

    check()


@settings(max_examples=500, deadline=None)
@given(texts_near(ids.FREE_NAME))
def test_check_name_accepts_only_one_line_of_printable_text(text: str) -> None:
    try:
        ids.check_name(text, "name")
    except InvalidInput:
        return
    assert text.strip() and len(text) <= 256 and not any(is_control(ch) for ch in text)


@settings(max_examples=500, deadline=None)
@given(texts_near(ids.MODEL_NAME))
def test_model_names_are_never_paths(text: str) -> None:
    try:
        ids.check_model_name(text)
    except InvalidInput:
        return
    assert "/" not in text and "\\" not in text and not text.startswith(".")
    assert not any(is_control(ch) for ch in text)


@given(st.text(max_size=50))
def test_free_text_keeps_newlines_and_refuses_nul(text: str) -> None:
    if "\x00" in text:
        with pytest.raises(InvalidInput):
            ids.check_text(text, "description")
    else:
        assert ids.check_text(text, "description") == text
    assert ids.check_text("line one\nline two\r\n", "description").count("\n") == 2


def test_the_reproducers_of_issue_17_are_refused() -> None:
    assert ids.NAME_RE.match("bob\n") is None  # a member's user name
    assert ids.KEY_RE.match("m\n") is None  # a metric key
    for path in ("../x", "a/b", "a\\b", ".x"):
        assert ids.MODEL_NAME_RE.match(path) is None and ids.DATASET_NAME_RE.match(path) is None
    for name in ("run\x00", "exp\n", "x\x1b[31m"):
        with pytest.raises(InvalidInput):
            ids.check_name(name, "name")
