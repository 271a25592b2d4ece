"""The path rules on their own (services/gateway/paths.py, services/gateway/mlflow/identifiers.py):
which raw paths are refused and why, how a checked path is forwarded, and how the MLflow layer
checks and escapes identifiers. The same rules on a running platform: test_path_attacks.py."""

from __future__ import annotations

from urllib.parse import unquote

import pytest

from cairn.kernel.errors import BadRequest
from cairn.kernel.ids import ALIAS_RE, KEY_RE
from cairn.services.gateway.mlflow.errors import MlflowError
from cairn.services.gateway.mlflow.identifiers import (
    ALIAS,
    MODEL_NAME,
    PROJECT,
    RUN_ID,
    TAG_KEY,
    artifact_path,
    escape,
)
from cairn.services.gateway.paths import check_path, encode_path

REFUSED = {
    b"/api/v1/registry/projects/a/%2e%2e/b/runs/r": "dot segment",
    b"/api/v1/registry/projects/a/%2E%2E/b": "dot segment",
    b"/api/v1/registry/projects/a/%252e%252e/b": "dot segment",
    b"/api/v1/registry/projects/a/%25252e%25252e/b": "dot segment",
    b"/api/v1/registry/projects/a/.%2e/b": "dot segment",
    b"/api/v1/registry/projects/a/../b": "dot segment",
    b"/api/v1/registry/projects/a/./b": "dot segment",
    b"/api/v1/registry/projects/a/..%2fb/runs": "encoded slash",
    b"/api/v1/registry/projects/a/..%2Fb/runs": "encoded slash",
    b"/api/v1/registry/projects/a/..%252fb/runs": "encoded slash",
    b"/api/v1/registry/projects/a/..%5cb/runs": "backslash",
    b"/api/v1/registry/projects/a/..\\b/runs": "backslash",
    b"/api/v1/registry/projects/a/runs%3F/search": "encoded '?'",
    b"/api/v1/registry/projects/a/models/m/aliases/production%3f": "encoded '?'",
    b"/api/v1/registry/projects/a/models/m/aliases/production%253F": "encoded '?'",
    b"/api/v1/registry/projects/a/models/m/aliases/production%23": "encoded '#'",
    b"/api/v1/registry/projects/a/runs/r%00": "control character",
    b"/api/v1/registry/projects/a/runs/r%0a": "control character",
    b"/api/v1/registry/projects/a/runs/r%7f": "control character",
    b"/api/v1/registry//projects": "empty segment",
    b"/api/v1/registry/projects/a/runs/": "empty segment",  # the middleware drops one '/' first
    b"/api/v1/registry/projects/%ff": "not UTF-8",
    b"/api/v1/registry/projects/%252525252e": "more than 4 times",
    b"api/v1/registry/projects": "must start with '/'",
}


@pytest.mark.parametrize("raw", sorted(REFUSED))
def test_a_path_that_could_be_read_two_ways_is_refused_naming_why(raw: bytes) -> None:
    with pytest.raises(BadRequest) as caught:
        check_path(raw)
    assert caught.value.status == 400 and REFUSED[raw] in caught.value.message


@pytest.mark.parametrize("raw", [b"/", b"/api/v1/registry/projects", b"/api/v1/registry/projects/a/runs/r/tags/a%20b",
                                 b"/api/v1/registry/projects/a/runs/r/tags/50%25", b"/api/v1/whoami",
                                 b"/api/v1/registry/projects/a/runs/r/tags/...", b"/mlflow/a/api/2.0/mlflow/runs/get",
                                 b"/api/v1/registry/projects/a/runs/r/tags/caf%C3%A9"])
def test_ordinary_paths_pass(raw: bytes) -> None:
    check_path(raw)


@pytest.mark.parametrize("path", ["projects/a/runs/r", "projects/a/runs/r/tags/a b", "x/50%/y", "x/caf\u00e9",
                                  "x/k:v@w+z", ""])
def test_a_forwarded_path_decodes_to_exactly_the_checked_path(path: str) -> None:
    encoded = encode_path(path)
    assert unquote(encoded) == path
    assert all(part not in (".", "..") for part in encoded.split("/"))


@pytest.mark.parametrize("path", ["projects/a/../b", "projects/./a", "projects/a?/search", "x/a#b", "x/a\x00",
                                  "x//y", "x/a\\b"])
def test_forwarding_refuses_what_the_check_refuses(path: str) -> None:
    with pytest.raises(BadRequest):
        encode_path(path)


@pytest.mark.parametrize(("identifier", "value"), [
    (RUN_ID, "../../b/runs/0123"), (RUN_ID, "r?x=1"), (RUN_ID, "r\n"), (RUN_ID, ""), (RUN_ID, 7),
    (MODEL_NAME, "../../b/models/m"), (MODEL_NAME, "m/aliases/production?"), (MODEL_NAME, ".."),
    (MODEL_NAME, "."), (MODEL_NAME, "m\n"), (MODEL_NAME, "m#x"),
    (TAG_KEY, "a/b"), (TAG_KEY, "k?"), (TAG_KEY, ".."), (TAG_KEY, "k\x00"), (TAG_KEY, None),
    (ALIAS, "production?"), (ALIAS, "production/x"), (ALIAS, "production\n"), (ALIAS, "1st"),
    (PROJECT, "A"), (PROJECT, "a\n"), (PROJECT, "a/../b"),
])
def test_an_identifier_that_is_not_its_kind_is_invalid_parameter_value_naming_the_parameter(
        identifier: object, value: object) -> None:
    with pytest.raises(MlflowError) as caught:
        identifier.segment(value, "the_param")  # type: ignore[attr-defined]
    assert caught.value.error_code == "INVALID_PARAMETER_VALUE" and caught.value.status == 400
    assert "'the_param'" in caught.value.message


def test_identifiers_are_escaped_as_one_segment() -> None:
    assert TAG_KEY.segment("my key:1", "key") == "my%20key%3A1"
    assert MODEL_NAME.segment("churn.v2", "name") == "churn.v2"
    assert RUN_ID.segment("0" * 32, "run_id") == "0" * 32
    assert escape("a/b?c") == "a%2Fb%3Fc" and escape("..") == "%2E%2E" and escape(".") == "%2E"


def test_the_mlflow_patterns_accept_nothing_the_registry_refuses() -> None:
    samples = ["m", "churn.v2", "a b", "k:v", "a/b", "..", "x" * 250, "x" * 251, "m\n", "é", "a?b", "-x", "Prod",
               "production", "1st", "a_b-c"]
    for sample in samples:
        if MODEL_NAME.pattern.fullmatch(sample) or TAG_KEY.pattern.fullmatch(sample):
            assert KEY_RE.fullmatch(sample), sample
        if ALIAS.pattern.fullmatch(sample):
            assert ALIAS_RE.fullmatch(sample), sample


def test_artifact_paths_are_checked_and_escaped_segment_by_segment() -> None:
    assert artifact_path("model/MLmodel") == "model/MLmodel"
    assert artifact_path("plots/a b.png") == "plots/a%20b.png"
    assert artifact_path("a?b/c#d") == "a%3Fb/c%23d"
    for bad in ("../x", "model/../../x", "a//b", "./a", "a/", "a\x00b", ""):
        with pytest.raises(MlflowError):
            artifact_path(bad)
