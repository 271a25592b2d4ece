"""Profiles: mergeable, canonical JSON that round-trips exactly, and bad input refused."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import orjson
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from cairn.monitor import TOP_K, CategoricalProfile, NumericProfile, Profile
from cairn.monitor.profile import profile_samples, profile_table


def _table(seed: int, rows: int = 2000) -> pa.Table:
    rng = np.random.default_rng(seed)
    amount = rng.lognormal(3, 1, rows) * np.where(rng.random(rows) < 0.1, -1, 1)
    amount[rng.random(rows) < 0.05] = np.nan
    return pa.table({
        "amount": amount,
        "count": pa.array(rng.integers(-5, 50, rows), pa.int32()),
        "country": pa.array(rng.choice(["de", "fr", "it", None], rows)),
        "flag": pa.array(rng.random(rows) < 0.3),
    })


def _integer_parts(column: NumericProfile | CategoricalProfile) -> dict:
    data = column.to_dict()
    data.pop("mean", None)
    data.pop("m2", None)
    return data


def test_profile_of_both_halves_merged_equals_profile_of_the_whole() -> None:
    table = _table(0)
    whole = profile_table(table)
    first = profile_table(table.slice(0, 700), reference=whole)
    second = profile_table(table.slice(700), reference=whole)
    merged = first.merge(second)
    assert merged.rows == whole.rows and merged.roles == whole.roles
    for name, column in whole.columns.items():
        assert _integer_parts(merged.columns[name]) == _integer_parts(column), name
        if isinstance(column, NumericProfile):
            assert merged.columns[name].mean == pytest.approx(column.mean, rel=1e-12)
            assert merged.columns[name].m2 == pytest.approx(column.m2, rel=1e-12)


def test_merging_profiles_with_different_edges_is_refused() -> None:
    a, b = profile_table(_table(0)), profile_table(_table(1))
    with pytest.raises(ValueError, match="different histogram edges"):
        a.merge(b)


def test_json_round_trip_is_exact_and_canonical() -> None:
    profile = profile_table(_table(2))
    data = profile.to_json()
    again = Profile.from_json(data)
    assert again == profile
    assert again.to_json() == data and b" " not in data
    assert again.digest() == profile.digest() and len(profile.digest()) == 64
    assert list(orjson.loads(data)) == sorted(orjson.loads(data))


def test_an_empty_column_round_trips_with_null_min_and_max() -> None:
    profile = profile_table(pa.table({"x": pa.array([None, None], pa.float64())}))
    data = orjson.loads(profile.to_json())
    assert data["columns"]["x"]["min"] is None
    assert math.isnan(Profile.from_json(profile.to_json()).columns["x"].min)


@pytest.mark.parametrize(("change", "message"), [
    (lambda d: d.update(version=7), "version"),
    (lambda d: d["columns"]["amount"].update(hist=[1, 2]), "hist needs"),
    (lambda d: d["columns"]["amount"].update(count=-1), "count"),
    (lambda d: d["columns"]["amount"].update(kind="text"), "kind"),
    (lambda d: d["columns"]["country"]["counts"].update(de=10**6), "sum to count"),
    (lambda d: d["roles"].update(amount="target"), "role"),
    (lambda d: d["columns"]["amount"].update(edges=[2.0, 1.0] + [3.0] * 7), "increasing"),
])
def test_from_json_refuses_inconsistent_profiles_with_a_message(change, message: str) -> None:
    data = orjson.loads(profile_table(_table(3)).to_json())
    change(data)
    with pytest.raises(ValueError, match=message):
        Profile.from_json(orjson.dumps(data))


def test_from_json_refuses_text_that_is_not_json() -> None:
    with pytest.raises(ValueError, match="JSON"):
        Profile.from_json(b"{not json")


def test_categorical_keeps_top_k_and_folds_the_rest_into_other() -> None:
    values = [f"v{i:05d}" for i in range(TOP_K + 50) for _ in range(1 + (i < 10))]
    profile = profile_table(pa.table({"c": values}))
    column = profile.columns["c"]
    assert isinstance(column, CategoricalProfile)
    assert len(column.counts) == TOP_K and column.other == 50
    assert column.counts["v00000"] == 2 and column.count == len(values)


def test_parquet_pandas_and_arrow_inputs_give_the_same_profile(tmp_path: Path) -> None:
    table = _table(4)
    path = tmp_path / "t.parquet"
    pq.write_table(table, path, row_group_size=300)
    from_arrow = profile_table(table)
    from_parquet = profile_table(path)  # edges from the merged sketch of all row groups
    assert all(_integer_parts(from_parquet.columns[n]) == _integer_parts(c)
               for n, c in from_arrow.columns.items())
    frame = pd.DataFrame({"x": [1.5, 2.5, None], "s": ["a", "b", "a"]})
    from_pandas = profile_table(frame)
    assert from_pandas.columns["x"].count == 2 and from_pandas.columns["s"].counts == {"a": 2, "b": 1}


def test_numeric_quantiles_are_within_the_sketch_accuracy() -> None:
    values = np.random.default_rng(5).lognormal(0, 2, 5000)
    column = profile_table(pa.table({"x": values})).columns["x"]
    ordered = np.sort(values)
    for q in (0.01, 0.25, 0.5, 0.9, 0.99):
        truth = ordered[int(np.floor(q * (values.size - 1)))]
        assert abs(column.quantile(q) - truth) <= 0.005 * truth * 1.0000001
    assert column.std == pytest.approx(np.std(values, ddof=1), rel=1e-12)


def test_profile_samples_reads_features_prediction_and_label() -> None:
    features = pa.array([{"amount": 1.0, "country": "de"}, {"amount": None, "country": "fr"},
                         None], pa.struct([("amount", pa.float64()), ("country", pa.string())]))
    table = pa.table({"request_id": ["a", "b", "c"], "features": features,
                      "prediction": [0.1, 0.9, 0.5], "label": pa.array([0, 1, None])})
    profile = profile_samples(table)
    assert profile.roles == {"amount": "feature", "country": "feature",
                             "prediction": "prediction", "label": "label"}
    assert (profile.columns["amount"].count, profile.columns["amount"].missing) == (1, 2)
    assert profile.columns["country"].missing == 1
    assert profile.columns["label"].count == 2
    probabilities = table.set_column(2, "prediction", pa.array([[0.1, 0.9], [0.1, 0.9], None]))
    assert profile_samples(probabilities).columns["prediction"].counts == {"[0.1,0.9]": 2}


def test_bad_roles_and_inputs_are_value_errors() -> None:
    with pytest.raises(ValueError, match="not a column"):
        profile_table(_table(6), roles={"nope": "label"})
    with pytest.raises(ValueError, match="role must be"):
        profile_table(_table(6), roles={"amount": "target"})
    with pytest.raises(ValueError, match="bins"):
        profile_table(_table(6), bins=0)
    with pytest.raises(ValueError, match="cannot profile"):
        profile_table([1, 2, 3])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="features"):
        profile_samples(pa.table({"x": [1]}))


def test_a_table_without_rows_profiles_to_empty_columns() -> None:
    empty = pa.table({"x": pa.array([], pa.float64()), "c": pa.array([], pa.string())})
    profile = profile_table(empty)
    assert profile.rows == 0 and profile.columns["x"].count == 0
    assert profile.columns["x"].hist.tolist() == [0]
    assert Profile.from_json(profile.to_json()) == profile
