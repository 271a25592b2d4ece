"""MLflow's run filter and order_by become the registry's search language (pure, no platform)."""

from __future__ import annotations

import pytest

from cairn.services.gateway.mlflow.errors import MlflowError
from cairn.services.gateway.mlflow.search import translate_filter, translate_order_by


@pytest.mark.parametrize(("mlflow", "cairn"), [
    ("metrics.acc > 0.9", "metrics.acc > 0.9"),
    ("params.lr = '0.1' and tags.team != 'x'", "params.lr = '0.1' and tags.team != 'x'"),
    ('params."learning rate" = \'0.1\'', "params.`learning rate` = '0.1'"),
    ("metrics.`val loss` <= 1", "metrics.`val loss` <= 1"),
    ("attributes.status = 'FINISHED'", "attributes.status = 'finished'"),
    ("status IN ('FINISHED', 'FAILED')", "attributes.status IN ('finished', 'failed')"),
    ("attributes.run_name LIKE 'bert-%'", "attributes.name LIKE 'bert-%'"),
    ("attributes.run_id = 'abc'", "attributes.run_id = 'abc'"),
    ("attributes.start_time > 0", "attributes.started_at > '1970-01-01T00:00:00.000000Z'"),
    ("attributes.user_id = 'alice'", "attributes.created_by LIKE 'alice:%'"),
    ("tags.mlflow.runName = 'a and b'", "tags.mlflow.runName = 'a and b'"),
    ("", None),
])
def test_filters_translate(mlflow: str, cairn: str | None) -> None:
    assert translate_filter(mlflow) == cairn


def test_order_by_translates_attributes_and_keeps_direction() -> None:
    assert translate_order_by(["metrics.acc DESC", "attributes.start_time", 'params."a b" ASC']) == [
        "metrics.acc DESC", "attributes.client_start_time", "params.`a b` ASC"]


@pytest.mark.parametrize("bad", ["attributes.artifact_uri = 'x'", "attributes.nope = 1", "metrics.acc ~ 1",
                                 "a.b.c = 1 or x"])
def test_unreadable_filters_are_invalid_parameter_values(bad: str) -> None:
    with pytest.raises(MlflowError) as err:
        translate_filter(bad)
    assert err.value.error_code == "INVALID_PARAMETER_VALUE"
