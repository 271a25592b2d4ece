"""Arrow table fingerprints: invariant to storage, sensitive to content."""

from __future__ import annotations

import datetime as dt
import decimal
import io

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pyarrow import feather

import cairn
from cairn.core import UnsupportedTypeError, fingerprint_table

N = 1000


@pytest.fixture(scope="module")
def table() -> pa.Table:
    rng = np.random.default_rng(7)
    ints = rng.integers(-(10**12), 10**12, N)
    mask = rng.random(N) < 0.1
    return pa.table(
        {
            "id": pa.array(np.arange(N, dtype=np.int64)),
            "x": pa.array(ints, mask=mask),
            "f": pa.array(rng.standard_normal(N), mask=rng.random(N) < 0.05),
            "flag": pa.array([bool(i % 3) if i % 7 else None for i in range(N)]),
            "name": pa.array([f"name-{i}" * (i % 4) if i % 11 else None for i in range(N)]),
            "big": pa.array([b"\x00\xff" * (i % 5) for i in range(N)], pa.large_binary()),
            "ts": pa.array(
                [dt.datetime(2024, 1, 1) + dt.timedelta(seconds=i) for i in range(N)],
                pa.timestamp("us", tz="UTC"),
            ),
            "day": pa.array([dt.date(2020, 1, 1) + dt.timedelta(days=i) for i in range(N)]),
            "price": pa.array([decimal.Decimal(i) / 100 for i in range(N)], pa.decimal128(12, 2)),
            "tags": pa.array(
                [[f"t{j}" for j in range(i % 3)] if i % 13 else None for i in range(N)]
            ),
            "point": pa.array(
                [{"x": i, "y": None if i % 2 else f"{i}"} if i % 17 else None for i in range(N)]
            ),
            "attrs": pa.array(
                [[("k", i)] if i % 19 else None for i in range(N)], pa.map_(pa.string(), pa.int64())
            ),
            "pair": pa.array(
                [[i, i + 1] if i % 23 else None for i in range(N)], pa.list_(pa.int32(), 2)
            ),
            "cat": pa.array([["red", "green", None][i % 3] for i in range(N)]).dictionary_encode(),
        }
    )


def rechunked(t: pa.Table, size: int) -> pa.Table:
    return pa.Table.from_batches(t.to_batches(max_chunksize=size), schema=t.schema)


def parquet_round_trip(t: pa.Table, **kwargs: object) -> pa.Table:
    buf = io.BytesIO()
    pq.write_table(t, buf, **kwargs)
    return pq.read_table(io.BytesIO(buf.getvalue()))


def feather_round_trip(t: pa.Table, **kwargs: object) -> pa.Table:
    buf = io.BytesIO()
    feather.write_feather(t, buf, **kwargs)
    return feather.read_table(io.BytesIO(buf.getvalue()))


def test_fingerprint_is_hex_blake3_and_reachable_from_cairn(table: pa.Table) -> None:
    fp = fingerprint_table(table)
    assert len(fp) == 64 and int(fp, 16) >= 0
    assert cairn.fingerprint_table(table) == fp


@pytest.mark.parametrize(
    "transform",
    [
        pytest.param(lambda t: rechunked(t, 7), id="chunks-of-7"),
        pytest.param(lambda t: rechunked(t, 333), id="chunks-of-333"),
        pytest.param(lambda t: t.combine_chunks(), id="combined"),
        pytest.param(lambda t: pa.concat_tables([t.slice(0, 401), t.slice(401)]), id="slices"),
        pytest.param(lambda t: pa.Table.from_batches([t.to_batches()[0]]), id="batch"),
        pytest.param(
            lambda t: parquet_round_trip(t, row_group_size=100, compression="zstd"),
            id="parquet-zstd-rg100",
        ),
        pytest.param(
            lambda t: parquet_round_trip(t, row_group_size=999, compression="none"),
            id="parquet-plain-rg999",
        ),
        pytest.param(lambda t: parquet_round_trip(t, use_dictionary=False), id="parquet-no-dict"),
        pytest.param(lambda t: feather_round_trip(t, compression="lz4"), id="feather-lz4"),
        pytest.param(
            lambda t: feather_round_trip(t, compression="uncompressed", chunksize=64),
            id="feather-chunks",
        ),
        pytest.param(lambda t: t.replace_schema_metadata({"written-by": "someone"}), id="metadata"),
    ],
)
def test_fingerprint_ignores_how_the_table_is_stored(table: pa.Table, transform) -> None:
    assert fingerprint_table(transform(table)) == fingerprint_table(table)


def test_record_batch_fingerprints_like_its_table(table: pa.Table) -> None:
    batch = table.combine_chunks().to_batches()[0]
    assert fingerprint_table(batch) == fingerprint_table(table)


def with_column(t: pa.Table, name: str, values: pa.Array) -> pa.Table:
    return t.set_column(t.schema.get_field_index(name), pa.field(name, values.type), values)


def changed_value(t: pa.Table, name: str, row: int, value: object) -> pa.Table:
    values = t.column(name).to_pylist()
    values[row] = value
    return with_column(t, name, pa.array(values, t.schema.field(name).type))


@pytest.mark.parametrize(
    ("column", "row", "value"),
    [
        ("x", 5, 12345),
        ("x", 5, None),
        ("f", 3, 1.5),
        ("flag", 1, None),
        ("name", 1, "name-1x"),
        ("name", 2, None),
        ("big", 4, b"\x00\xff" * 3 + b"\x00"),
        ("ts", 0, dt.datetime(2024, 1, 1, 0, 0, 0, 1)),
        ("price", 9, decimal.Decimal("0.10")),
        ("tags", 5, ["t0", "t1", "t2"]),
        ("tags", 4, []),
        ("point", 1, {"x": 1, "y": "1"}),
        ("attrs", 1, [("k", 2)]),
        ("pair", 1, [1, 3]),
        ("cat", 0, "green"),
    ],
)
def test_fingerprint_changes_with_any_value_or_null(
    table: pa.Table, column: str, row: int, value: object
) -> None:
    assert table.column(column)[row].as_py() != value
    changed = changed_value(table, column, row, value)
    assert fingerprint_table(changed) != fingerprint_table(table)


def test_fingerprint_changes_with_names_types_order_and_rows(table: pa.Table) -> None:
    base = fingerprint_table(table)
    renamed = table.rename_columns(["ID"] + table.column_names[1:])
    retyped = with_column(table, "id", table.column("id").cast(pa.int32()))
    reordered = table.select(["x", "id"] + table.column_names[2:])
    fewer = table.slice(0, N - 1)
    shuffled = table.take(np.r_[1, 0, np.arange(2, N)])
    decoded = with_column(table, "cat", table.column("cat").cast(pa.string()))
    fingerprints = [
        fingerprint_table(t) for t in (renamed, retyped, reordered, fewer, shuffled, decoded)
    ]
    assert base not in fingerprints
    assert len(set(fingerprints)) == len(fingerprints)


def test_bytes_under_nulls_and_string_offsets_do_not_matter() -> None:
    clean = pa.array([1, None, 3], pa.int64())
    garbage = pa.Array.from_buffers(
        pa.int64(),
        3,
        [clean.buffers()[0], pa.py_buffer(np.array([1, 999, 3], np.int64))],
        null_count=1,
    )
    assert fingerprint_table(pa.table({"a": garbage})) == fingerprint_table(pa.table({"a": clean}))
    strings = pa.array(["skip", "me", "abc", None, "de"])
    sliced = strings.slice(2)
    assert sliced.offset == 2
    fresh = pa.array(["abc", None, "de"])
    assert fingerprint_table(pa.table({"s": sliced})) == fingerprint_table(pa.table({"s": fresh}))


def test_null_and_empty_string_and_value_splits_differ() -> None:
    def fp(values: list) -> str:
        return fingerprint_table(pa.table({"s": pa.array(values, pa.string())}))

    assert fp([None]) != fp([""])
    assert fp(["ab", "c"]) != fp(["a", "bc"])
    floats = [fingerprint_table(pa.table({"f": pa.array([v])})) for v in (0.0, -0.0)]
    assert floats[0] != floats[1]


def test_empty_tables_fingerprint_by_schema() -> None:
    a = pa.table({"a": pa.array([], pa.int64())})
    assert fingerprint_table(a) == fingerprint_table(parquet_round_trip(a))
    assert fingerprint_table(a) != fingerprint_table(pa.table({"a": pa.array([], pa.int32())}))


def test_unsupported_types_are_refused_by_name() -> None:
    union = pa.UnionArray.from_sparse(
        pa.array([0, 1], pa.int8()), [pa.array([1, 2]), pa.array(["a", "b"])]
    )
    with pytest.raises(UnsupportedTypeError, match="'u'"):
        fingerprint_table(pa.table({"u": union}))
