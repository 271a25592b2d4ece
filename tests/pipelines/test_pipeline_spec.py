"""The parsed pipeline and its expression language: the AST round trip (hypothesis), parse errors
with their offsets, evaluation, references, and the canonical form and digest."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cairn.pipelines import load_pipeline
from cairn.pipelines.expr import (
    BoolOp,
    Compare,
    ExpressionError,
    Literal,
    Not,
    Ref,
    evaluate,
    parse_expression,
    references,
    to_source,
)
from cairn.pipelines.spec import Ref as InputRef
from cairn.pipelines.spec import parse_ref

EXAMPLE = Path(__file__).parent / "examples" / "ml.yaml"

names = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=12)
literals = st.one_of(
    st.none(), st.booleans(), st.integers(-10**12, 10**12),
    st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=12).map(str)).map(Literal)
refs = st.one_of(
    names.map(Ref),
    st.builds(Ref, names, names, st.sampled_from(["metrics", "outputs"])))
atoms = st.one_of(literals, refs)
ops = st.sampled_from(["==", "!=", "<", "<=", ">", ">="])


def _extend(inner: st.SearchStrategy) -> st.SearchStrategy:  # type: ignore[type-arg]
    return st.one_of(
        st.builds(Compare, ops, inner, inner),
        st.builds(Not, inner),
        st.builds(BoolOp, st.sampled_from(["and", "or"]), st.lists(inner, min_size=2, max_size=3).map(tuple)))


expressions = st.recursive(atoms, _extend, max_leaves=12)


@settings(max_examples=400, deadline=None)
@given(expressions)
def test_printing_an_expression_and_parsing_it_gives_the_same_tree(tree) -> None:  # type: ignore[no-untyped-def]
    assert parse_expression(to_source(tree)) == tree


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=40))
def test_any_text_parses_or_raises_an_expression_error_within_it(text: str) -> None:
    try:
        parse_expression(text)
    except ExpressionError as err:
        assert 0 <= err.offset <= len(text)


def test_precedence_is_not_then_and_then_or() -> None:
    tree = parse_expression("not params.a or params.b and steps.t.metrics.acc >= 0.9")
    assert tree == BoolOp("or", (Not(Ref("a")), BoolOp("and", (
        Ref("b"), Compare(">=", Ref("acc", "t", "metrics"), Literal(0.9))))))


def test_names_with_other_characters_use_brackets() -> None:
    tree = parse_expression("steps.train.metrics[\"train/loss\"] < 1e-3")
    assert tree == Compare("<", Ref("train/loss", "train", "metrics"), Literal(0.001))
    assert to_source(tree) == 'steps.train.metrics["train/loss"] < 0.001'


@pytest.mark.parametrize(("text", "offset", "words"), [
    ("params.a < 1 < 2", 13, "do not chain"),
    ("steps.t.logs.x > 1", 8, "'metrics' or 'outputs'"),
    ("accuracy > 0.9", 0, "unknown name 'accuracy'"),
    ("params.a >", 10, "expected a value, found the end"),
    ("(params.a", 9, "expected ')'"),
    ("params.a == 1 params.b", 14, "after a complete expression"),
    ("params.a == $", 12, "unexpected character '$'"),
    ("__import__('os')", 0, "unknown name '__import__'"),
])
def test_a_bad_expression_says_what_and_where(text: str, offset: int, words: str) -> None:
    with pytest.raises(ExpressionError) as caught:
        parse_expression(text)
    assert words in caught.value.message
    assert caught.value.offset == offset


def test_evaluation_decides_with_params_and_earlier_steps() -> None:
    tree = parse_expression("steps.eval.metrics.auc >= params.min_auc and steps.eval.outputs.ok == true")
    steps = {"eval": {"metrics": {"auc": 0.91}, "outputs": {"ok": True}}}
    assert evaluate(tree, {"min_auc": 0.9}, steps) is True
    assert evaluate(tree, {"min_auc": 0.95}, steps) is False


def test_evaluation_refuses_to_guess_a_missing_value_or_unlike_types() -> None:
    with pytest.raises(ExpressionError, match="has no value"):
        evaluate(parse_expression("steps.eval.metrics.auc > 0.5"), {}, {"eval": {"metrics": {}}})
    with pytest.raises(ExpressionError, match="cannot compare"):
        evaluate(parse_expression("params.a > 1"), {"a": "x"}, {})
    with pytest.raises(ExpressionError, match="not true or false"):
        evaluate(parse_expression("params.a and true"), {"a": 1}, {})


def test_references_lists_every_name_in_reading_order() -> None:
    tree = parse_expression("params.a < steps.s.metrics.m or not steps.t.outputs.o == 'x'")
    assert references(tree) == [Ref("a"), Ref("m", "s", "metrics"), Ref("o", "t", "outputs")]


@pytest.mark.parametrize(("text", "ref"), [
    ("dataset:transactions", InputRef("dataset", "transactions")),
    ("dataset:transactions@v3", InputRef("dataset", "transactions", version=3)),
    ("artifact:train/model.pkl", InputRef("artifact", "model.pkl", step="train")),
    ("model:fraud@production", InputRef("model", "fraud", alias="production")),
    ("model:fraud@v12", InputRef("model", "fraud", version=12)),
    ("model:fraud", InputRef("model", "fraud")),
])
def test_input_references_parse_and_print_back(text: str, ref: InputRef) -> None:
    assert parse_ref(text) == ref
    assert str(ref) == text


@pytest.mark.parametrize("text", ["dataset:", "dataset:x@v0", "artifact:train", "model:m@1x", "s3://x", "file:a"])
def test_other_text_is_no_input_reference(text: str) -> None:
    assert parse_ref(text) is None


def test_the_example_parses_into_typed_steps() -> None:
    pipeline = load_pipeline(EXAMPLE)
    train = pipeline.step("train")
    assert train.kind == "job" and train.command == ("python", "train.py", "--epochs", "5")
    assert train.resources.memory_mib == 8192 and train.resources.gpus == 1 and train.retries == 2
    assert train.inputs["features"] == InputRef("artifact", "features", step="prepare")
    gate = pipeline.step("gate").special
    assert gate.champion.model == "fraud" and gate.champion.alias == "production"  # type: ignore[union-attr]
    assert gate.champion.min_seeds == 3  # type: ignore[union-attr]
    assert pipeline.step("approve").special.role == "admin"  # type: ignore[union-attr]
    assert pipeline.step("deploy").special.bake_s == 600.0  # type: ignore[union-attr]
    assert pipeline.concurrency == "cancel-older"


def test_the_digest_ignores_comments_key_order_spelled_out_defaults_and_int_or_float() -> None:
    one = load_pipeline("name: p\nsteps:\n  - id: a\n    command: run\n    resources: {cpus: 2}\n")
    two = load_pipeline("# same pipeline\nsteps:\n  - command: run\n    resources: {cpus: 2.0, gpus: 0}\n"
                        "    retries: 0\n    id: a\n    queue: default\nname: p\nconcurrency: queue\n")
    assert one.to_dict() == two.to_dict()
    assert one.digest() == two.digest() and len(one.digest()) == 64


def test_the_digest_changes_with_anything_that_changes_the_pipeline() -> None:
    base = "name: p\nsteps:\n  - id: a\n    command: run\n"
    digests = {load_pipeline(text).digest() for text in (
        base, base.replace("run", "run2"), base + "    retries: 1\n", base + "    when: params.x == 1\nparams: {x: 1}\n",
        base.replace("name: p", "name: q"))}
    assert len(digests) == 5


def test_expressions_are_canonical_in_the_dict() -> None:
    pipeline = load_pipeline("name: p\nparams: {x: 1}\nsteps:\n  - id: a\n    command: run\n"
                             "    when: ( params.x==1 )and(not params.x>2)\n")
    assert pipeline.to_dict()["steps"][0]["when"] == "params.x == 1 and not (params.x > 2)"


def test_asking_for_an_unknown_step_names_the_known_ones() -> None:
    with pytest.raises(KeyError, match="no step 'nope' in pipeline 'fraud-ml'"):
        load_pipeline(EXAMPLE).step("nope")
