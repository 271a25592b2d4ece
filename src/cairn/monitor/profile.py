"""Profiles of tables: computed once, merged, stored as canonical JSON (docs/monitor.md).

A profile is what drift is computed from, so a reference (a dataset version, an evaluation set)
is read once and later compared with any number of live windows without touching its rows again.
Numeric columns go through ``cairn.core.profile.numeric_stats`` (the C++ core: one pass over the
Arrow buffers, threads, GIL released), or its numpy reference when the core lacks it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from cairn.core.profile import numeric_stats
from cairn.monitor.columns import TOP_K, CategoricalProfile, NumericProfile

__all__ = ["TOP_K", "CategoricalProfile", "NumericProfile", "Profile", "ROLES",
           "profile_samples", "profile_table"]

ROLES = ("feature", "prediction", "label")
FORMAT_VERSION = 1
ColumnProfile = NumericProfile | CategoricalProfile


@dataclass(eq=False)
class Profile:
    """Per-column profiles of one table, with each column's role."""

    rows: int
    columns: dict[str, ColumnProfile]
    roles: dict[str, str] = field(default_factory=dict)

    def merge(self, other: Profile) -> Profile:
        """The profile of both tables together (the same columns, kinds, roles and edges)."""
        if set(self.columns) != set(other.columns):
            missing = sorted(set(self.columns) ^ set(other.columns))
            raise ValueError(f"profiles have different columns (only in one: {missing})")
        merged: dict[str, ColumnProfile] = {}
        for name, mine in self.columns.items():
            theirs = other.columns[name]
            if mine.kind != theirs.kind:
                raise ValueError(f"column {name!r} is {mine.kind} in one profile and "
                                 f"{theirs.kind} in the other")
            if self.roles.get(name) != other.roles.get(name):
                raise ValueError(f"column {name!r} has role {self.roles.get(name)!r} in one "
                                 f"profile and {other.roles.get(name)!r} in the other")
            try:
                merged[name] = mine.merge(theirs)  # type: ignore[arg-type]
            except ValueError as exc:
                raise ValueError(f"column {name!r}: {exc}") from None
        return Profile(rows=self.rows + other.rows, columns=merged, roles=dict(self.roles))

    def to_dict(self) -> dict[str, Any]:
        return {"version": FORMAT_VERSION, "rows": self.rows, "roles": dict(self.roles),
                "columns": {name: column.to_dict() for name, column in self.columns.items()}}

    def to_json(self) -> bytes:
        """Canonical JSON: sorted keys, no whitespace, floats in their shortest round-trip form
        and NaN as null, so the same profile always gives the same bytes (and digest)."""
        return orjson.dumps(self.to_dict(), option=orjson.OPT_SORT_KEYS)

    @classmethod
    def from_json(cls, data: bytes | str) -> Profile:
        """Parse and validate; anything inconsistent is a ValueError that says what."""
        try:
            parsed = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            raise ValueError(f"a profile must be JSON: {exc}") from None
        return cls.from_dict(parsed)

    @classmethod
    def from_dict(cls, data: Any) -> Profile:
        if not isinstance(data, dict):
            raise ValueError("a profile must be a JSON object")
        if data.get("version") != FORMAT_VERSION:
            raise ValueError(f"profile version must be {FORMAT_VERSION}, got {data.get('version')!r}")
        rows = data.get("rows")
        if isinstance(rows, bool) or not isinstance(rows, int) or rows < 0:
            raise ValueError(f"rows must be a non-negative integer, got {rows!r}")
        columns_in, roles = data.get("columns"), data.get("roles", {})
        if not isinstance(columns_in, dict) or not isinstance(roles, dict):
            raise ValueError("columns and roles must be JSON objects keyed by column name")
        columns: dict[str, ColumnProfile] = {}
        for name, column in columns_in.items():
            if not isinstance(column, dict):
                raise ValueError(f"column {name!r} must be an object")
            kind = column.get("kind")
            if kind == "numeric":
                columns[name] = NumericProfile.from_dict(column, name)
            elif kind == "categorical":
                columns[name] = CategoricalProfile.from_dict(column, name)
            else:
                raise ValueError(f"column {name!r}: kind must be 'numeric' or 'categorical', "
                                 f"got {kind!r}")
            if column.get("count", 0) + column.get("missing", 0) != rows:
                raise ValueError(f"column {name!r}: count + missing must equal rows ({rows})")
        _check_roles(roles, columns)
        return cls(rows=rows, columns=columns, roles=dict(roles))

    def digest(self) -> str:
        """BLAKE3 (hex) of the canonical JSON: the profile's content address."""
        from cairn.core import blake3

        return blake3(self.to_json()).hex()

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Profile) and self.to_dict() == other.to_dict()


def _check_roles(roles: Mapping[str, Any], columns: Mapping[str, Any]) -> None:
    for name, role in roles.items():
        if name not in columns:
            raise ValueError(f"role given for {name!r}, which is not a column "
                             f"(columns: {sorted(columns)[:20]})")
        if role not in ROLES:
            raise ValueError(f"column {name!r}: role must be one of {list(ROLES)}, got {role!r}")


def _is_numeric(kind: pa.DataType) -> bool:
    return pa.types.is_integer(kind) or pa.types.is_floating(kind)


def _batches(data: Any) -> tuple[pa.Schema, int, Any]:
    """(schema, rows, a function giving an iterator of record batches) for any accepted input.
    Parquet is read one row group at a time, so memory stays near one row group."""
    if isinstance(data, (str, Path)):
        file = pq.ParquetFile(data)
        schema = file.schema_arrow

        def read() -> Iterator[pa.RecordBatch]:
            for group in range(file.num_row_groups):
                yield from file.read_row_group(group).to_batches()
        return schema, file.metadata.num_rows, read
    if isinstance(data, pd.DataFrame):
        data = pa.Table.from_pandas(data, preserve_index=False)
    if isinstance(data, pa.RecordBatch):
        data = pa.Table.from_batches([data])
    if not isinstance(data, pa.Table):
        raise ValueError(f"cannot profile a {type(data).__name__}: give an Arrow table or record "
                         "batch, a pandas DataFrame or a Parquet path")
    table = data
    return table.schema, table.num_rows, lambda: iter(table.to_batches())


def _category_key(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return value if isinstance(value, str) else str(value)


def categorical_counts(column: pa.Array | pa.ChunkedArray) -> tuple[dict[str, int], int]:
    """(value -> count, nulls) of a non-numeric column, by pyarrow.compute.value_counts; a nested
    value (a list of class probabilities, a struct) is counted by its canonical JSON text."""
    if pa.types.is_dictionary(column.type):
        column = column.cast(column.type.value_type)
    counts: dict[str, int] = {}
    if pa.types.is_nested(column.type):  # lists (class probabilities), structs: no hash kernel
        for value in column.to_pylist():
            if value is not None:
                key = orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()
                counts[key] = counts.get(key, 0) + 1
        return counts, int(column.null_count)
    for entry in pc.value_counts(column).to_pylist():
        if entry["values"] is None:
            continue
        key = _category_key(entry["values"])
        counts[key] = counts.get(key, 0) + int(entry["counts"])
    return counts, int(column.null_count)


def _equal_mass_edges(profile: NumericProfile, bins: int) -> np.ndarray:
    if profile.count == 0:
        return np.zeros(0, dtype=np.float64)
    inner = profile.quantiles([i / bins for i in range(1, bins)])
    return np.unique(np.asarray(inner, dtype=np.float64))


def _numeric_from_stats(stats: Any, edges: np.ndarray) -> NumericProfile:
    hist = stats.hist if stats.hist is not None else np.array([stats.count], dtype=np.int64)
    return NumericProfile(
        count=int(stats.count), missing=int(stats.missing), min=float(stats.min),
        max=float(stats.max), mean=float(stats.mean), m2=float(stats.m2), zero=int(stats.zero),
        pos_offset=int(stats.pos_offset), pos=np.asarray(stats.pos, dtype=np.int64),
        neg_offset=int(stats.neg_offset), neg=np.asarray(stats.neg, dtype=np.int64),
        edges=np.asarray(edges, dtype=np.float64), hist=np.asarray(hist, dtype=np.int64))


def _profile_numeric(read: Any, names: list[str], edges: dict[str, np.ndarray | None],
                     threads: int | None) -> dict[str, NumericProfile]:
    """One pass per batch over every numeric column; columns whose edges are not known yet get a
    first pass for the sketch, then a second for the histogram on equal-mass edges."""
    totals: dict[str, NumericProfile] = {}
    for batch in read():
        arrays = [batch.column(name) for name in names]
        given = [edges[name] for name in names]
        for name, stats, column_edges in zip(names, numeric_stats(arrays, given, threads=threads),
                                             given):
            part = _numeric_from_stats(stats, column_edges if column_edges is not None else np.zeros(0))
            totals[name] = totals[name].merge(part) if name in totals else part
    return totals


def _numeric_profiles(read: Any, names: list[str], reference: Profile | None, bins: int,
                      threads: int | None) -> dict[str, NumericProfile]:
    edges: dict[str, np.ndarray | None] = {}
    for name in names:
        known = reference.columns.get(name) if reference is not None else None
        edges[name] = known.edges if isinstance(known, NumericProfile) else None
    unknown = [name for name in names if edges[name] is None]
    if unknown:
        sketches = _profile_numeric(read, unknown, {n: None for n in unknown}, threads)
        for name in unknown:
            edges[name] = _equal_mass_edges(sketches[name], bins) if name in sketches else \
                np.zeros(0, dtype=np.float64)
    result = _profile_numeric(read, names, edges, threads)
    for name in names:  # a table with no rows: empty profiles on the agreed edges
        if name not in result:
            empty = np.zeros(0, dtype=np.int64)
            agreed = edges[name]
            column_edges = agreed if agreed is not None else np.zeros(0)
            result[name] = NumericProfile(0, 0, np.nan, np.nan, 0.0, 0.0, 0, 0, empty, 0, empty,
                                          np.asarray(column_edges, dtype=np.float64),
                                          np.zeros(len(column_edges) + 1, dtype=np.int64))
    return result


def profile_table(data: pa.Table | pa.RecordBatch | pd.DataFrame | str | Path, *,
                  reference: Profile | None = None, roles: Mapping[str, str] | None = None,
                  bins: int = 10, threads: int | None = None) -> Profile:
    """Profile every column: Arrow int/uint/float columns are numeric, everything else
    (strings, dictionaries, booleans) categorical. Histogram edges are the reference's when one
    is given (so that PSI and Jensen-Shannon compare the same bins), else ``bins`` equal-mass
    bins from the column's own sketch."""
    if isinstance(bins, bool) or not isinstance(bins, int) or bins < 1:
        raise ValueError(f"bins must be a positive integer, got {bins!r}")
    schema, rows, read = _batches(data)
    names = list(schema.names)
    if len(set(names)) != len(names):
        raise ValueError("the table has duplicate column names; rename them before profiling")
    column_roles = {name: "feature" for name in names}
    if roles:
        _check_roles(roles, column_roles)
        column_roles.update(roles)
    numeric = [name for name in names if _is_numeric(schema.field(name).type)]
    columns: dict[str, ColumnProfile] = dict(_numeric_profiles(read, numeric, reference, bins,
                                                               threads))
    categorical = [name for name in names if name not in columns]
    totals: dict[str, dict[str, int]] = {name: {} for name in categorical}
    missing = dict.fromkeys(categorical, 0)
    if categorical:
        for batch in read():  # one pass for all categorical columns
            for name in categorical:
                counts, nulls = categorical_counts(batch.column(name))
                missing[name] += nulls
                for value, n in counts.items():
                    totals[name][value] = totals[name].get(value, 0) + n
    for name in categorical:
        columns[name] = CategoricalProfile.from_counts(totals[name], missing[name])
    return Profile(rows=rows, columns={name: columns[name] for name in names},
                   roles=column_roles)


def profile_samples(table: pa.Table, *, reference: Profile | None = None) -> Profile:
    """Profile an inference-log table (docs/inference-log.md): the ``features`` struct's fields
    are feature columns, ``prediction`` has the role "prediction", ``label`` (when present)
    the role "label"."""
    if "features" not in table.schema.names or "prediction" not in table.schema.names:
        raise ValueError("an inference-log table needs 'features' and 'prediction' columns")
    features = table.column("features")
    if not pa.types.is_struct(features.type):
        raise ValueError(f"'features' must be a struct column, got {features.type}")
    struct = features.combine_chunks() if isinstance(features, pa.ChunkedArray) else features
    arrays: dict[str, Any] = {}
    for index in range(struct.type.num_fields):
        name = struct.type.field(index).name
        if name in ("prediction", "label"):
            raise ValueError(f"feature {name!r} collides with the {name} column; rename it")
        arrays[name] = struct.field(index)  # child array; nulls of the struct itself count too
        if struct.null_count:
            arrays[name] = pc.if_else(pc.is_valid(struct), arrays[name],
                                      pa.scalar(None, arrays[name].type))
    roles = {name: "feature" for name in arrays}
    arrays["prediction"] = table.column("prediction")
    roles["prediction"] = "prediction"
    if "label" in table.schema.names:
        arrays["label"] = table.column("label")
        roles["label"] = "label"
    flat = pa.Table.from_arrays([_as_array(a) for a in arrays.values()], names=list(arrays))
    return profile_table(flat, reference=reference, roles=roles)


def _as_array(column: Any) -> pa.Array | pa.ChunkedArray:
    return column if isinstance(column, (pa.Array, pa.ChunkedArray)) else pa.array(column)
