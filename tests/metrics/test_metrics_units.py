"""Metrics pieces without processes: batch parsing, SQLite summaries and dedupe, orphan cleanup,
the in-memory tail and the cross-run aggregate."""

from __future__ import annotations

import math
import sqlite3
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from cairn.kernel.errors import InvalidInput, PayloadTooLarge
from cairn.services.metrics import writer as writer_module
from cairn.services.metrics.domain import SCHEMA, parse_arrow, parse_json, to_ipc
from cairn.services.metrics.queries import Series, cross_run_aggregate, load_series, read_key
from cairn.services.metrics.store import MetricsStore
from cairn.services.metrics.writer import MetricsWriter, Tail, summarize, write_part


def test_json_batch_accepts_special_floats_and_names_bad_points() -> None:
    _, table = parse_json({"batch_id": "b", "points": [{"key": "a", "value": "NaN", "step": 1},
                                                       {"key": "a", "value": "-Infinity", "step": 2}]}, 10)
    values = table.column("value").to_pylist()
    assert math.isnan(values[0]) and values[1] == -math.inf
    with pytest.raises(InvalidInput, match="point 1: value True"):
        parse_json({"batch_id": "b", "points": [{"key": "a", "value": 1}, {"key": "a", "value": True}]}, 10)
    with pytest.raises(InvalidInput, match="point 0: step"):
        parse_json({"batch_id": "b", "points": [{"key": "a", "value": 1, "step": 1.5}]}, 10)
    with pytest.raises(PayloadTooLarge):
        parse_json({"batch_id": "b", "points": [{"key": "a", "value": 1}] * 11}, 10)
    with pytest.raises(InvalidInput, match="point 0: timestamp 'NaN' must be a finite number"):
        parse_json({"batch_id": "b", "points": [{"key": "a", "value": 1, "timestamp": "NaN"}]}, 10)
    with pytest.raises(InvalidInput, match="batch_id"):
        parse_json({"points": [{"key": "a", "value": 1}]}, 10)


def test_arrow_batch_is_cast_and_checked() -> None:
    table = pa.table({"key": ["a", "b"], "value": [1, 2], "step": [0, 1]})
    _, parsed = parse_arrow(to_ipc(table), "b1", 10)
    assert parsed.schema == SCHEMA and parsed.column("value").to_pylist() == [1.0, 2.0]
    with pytest.raises(InvalidInput, match="lacks column"):
        parse_arrow(to_ipc(pa.table({"key": ["a"]})), "b1", 10)
    with pytest.raises(InvalidInput, match="not an Arrow"):
        parse_arrow(b"nonsense", "b1", 10)
    with pytest.raises(InvalidInput, match="'value' is string; each value must be a number"):
        parse_arrow(to_ipc(pa.table({"key": ["a"], "value": ["1.5"], "step": [0]})), "b1", 10)
    with pytest.raises(InvalidInput, match="'step' is double"):
        parse_arrow(to_ipc(pa.table({"key": ["a"], "value": [1.5], "step": [0.5]})), "b1", 10)
    with pytest.raises(PayloadTooLarge):
        parse_arrow(to_ipc(pa.table({"key": ["a"] * 11, "value": [1.0] * 11, "step": list(range(11))})), "b1", 10)
    with pytest.raises(InvalidInput, match="point 1: timestamp must be a finite"):
        parse_arrow(to_ipc(pa.table({"key": ["a"] * 2, "value": [1.0] * 2, "step": [0, 1],
                                     "timestamp": [0.0, math.inf]})), "b1", 10)
    special = to_ipc(pa.table({"key": ["a"] * 3, "value": [math.nan, math.inf, -math.inf], "step": [0, 1, 2]}))
    values = parse_arrow(special, "b1", 10)[1].column("value").to_pylist()
    assert math.isnan(values[0]) and values[1:] == [math.inf, -math.inf]


def test_summaries_merge_across_parts_and_keep_nan_and_inf(tmp_path: Path) -> None:
    store = MetricsStore(tmp_path / "m.sqlite3")
    first = pa.table({"key": ["x", "x"], "value": [math.nan, 5.0], "step": [0, 3], "timestamp": [10.0, 13.5]})
    second = pa.table({"key": ["x"], "value": [math.inf], "step": [2], "timestamp": [20.0]})
    store.commit_part("p", "r", "a", 1, 1, 2, [("m1", 1)], summarize(first, np.array([1, 1])))
    store.commit_part("p", "r", "b", 2, 2, 1, [("m2", 2)], summarize(second, np.array([2])))
    (summary,) = store.summaries("p", "r")
    assert summary == {"key": "x", "count": 3, "min": 5.0, "max": math.inf, "last": 5.0, "last_step": 3,
                       "last_time": 13.5}  # the last step's point, with its time
    assert store.applied_ids(["m1", "m3"]) == {"m1"}
    assert store.parts("p", "r") == ["a", "b"]


def test_orphan_parts_are_removed_and_listed_parts_kept(tmp_path: Path) -> None:
    store = MetricsStore(tmp_path / "m.sqlite3")
    table = pa.table({"key": ["x"], "value": [1.0], "step": [0], "timestamp": [0.0]})
    write_part(tmp_path / "p" / "r" / "part-kept.parquet", table)
    write_part(tmp_path / "p" / "r" / "part-orphan.parquet", table)
    (tmp_path / "p" / "r" / "part-half.parquet.tmp").write_bytes(b"x")
    # a named replica's folder inside the unnamed one's (its read model, its own parts): not ours to touch
    (tmp_path / "replicas" / "b").mkdir(parents=True)
    (tmp_path / "replicas" / "b" / "runs.sqlite3").write_bytes(b"x")
    write_part(tmp_path / "replicas" / "b" / "p" / "r" / "part-theirs.parquet", table)
    store.commit_part("p", "r", "part-kept.parquet", 1, 1, 1, [("m", 1)], summarize(table, np.array([1])))
    writer = MetricsWriter.__new__(MetricsWriter)
    writer.store, writer.root = store, tmp_path
    writer.remove_orphans()
    assert sorted(p.name for p in (tmp_path / "p" / "r").iterdir()) == ["part-kept.parquet"]
    assert (tmp_path / "replicas" / "b" / "runs.sqlite3").exists()
    assert (tmp_path / "replicas" / "b" / "p" / "r" / "part-theirs.parquet").exists()
    tail = Tail()
    tail.add(7, "p", "r", pa.table({"key": ["x"], "value": [2.0], "step": [1], "timestamp": [0.0]}))
    series = load_series(store, tmp_path, tail, "p", "r", "x")
    assert series.steps.tolist() == [0, 1] and series.values.tolist() == [1.0, 2.0]
    tail.drop([7])
    assert tail.rows == 0


def test_cross_run_aggregate_uses_each_runs_last_value_per_step() -> None:
    a = Series(np.array([0, 0, 1]), np.array([9.0, 1.0, 2.0]), np.zeros(3))
    b = Series(np.array([0, 1]), np.array([3.0, math.nan]), np.zeros(2))
    agg = cross_run_aggregate([a, b], None)
    assert agg["steps"] == [0, 1] and agg["mean"] == [2.0, 2.0] and agg["count"] == [2, 1]
    assert agg["median"] == [2.0, 2.0] and agg["min"] == [1.0, 2.0]


def test_parts_are_sorted_by_key_and_one_key_reads_back_in_arrival_order(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(writer_module, "ROW_GROUP_ROWS", 4)  # many row groups from a small part
    n = 30
    keys = ["b", "a", "c"] * (n // 3)
    table = pa.table({"key": keys, "value": [float(i) for i in range(n)], "step": [i // 3 for i in range(n)],
                      "timestamp": [0.0] * n, "seq": [1] * n})
    path = tmp_path / "part.parquet"
    write_part(path, table)
    part = pq.ParquetFile(path)
    assert part.metadata.num_row_groups == 8
    assert part.read(columns=["key"]).column("key").to_pylist() == sorted(keys)
    b = read_key(str(path), "b")
    assert b is not None and b.column("step").to_pylist() == list(range(10))
    assert b.column("value").to_pylist() == [float(i) for i in range(0, n, 3)]
    assert read_key(str(path), "zzz") is None


def test_a_store_made_before_summaries_kept_times_gains_the_column(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    with sqlite3.connect(path) as db:  # the summaries table as it was
        db.execute("CREATE TABLE summaries (project TEXT NOT NULL, run_id TEXT NOT NULL, key TEXT NOT NULL, "
                   "count INTEGER NOT NULL, min REAL, max REAL, last REAL, last_step INTEGER NOT NULL, "
                   "last_seq INTEGER NOT NULL, PRIMARY KEY (project, run_id, key))")
        db.execute("INSERT INTO summaries VALUES ('p', 'r', 'x', 1, 1.0, 1.0, 1.0, 0, 1)")
    store = MetricsStore(path)
    assert store.summaries("p", "r")[0]["last_time"] is None  # unknown for old rows (MLflow gets 0)
    later = pa.table({"key": ["x"], "value": [2.0], "step": [1], "timestamp": [42.0]})
    store.commit_part("p", "r", "c", 2, 2, 1, [("m3", 2)], summarize(later, np.array([2])))
    assert store.summaries("p", "r")[0] == {"key": "x", "count": 2, "min": 1.0, "max": 2.0, "last": 2.0,
                                                 "last_step": 1, "last_time": 42.0}


def test_a_batch_the_writer_dropped_before_its_publisher_added_it_is_not_read_twice() -> None:
    """The stream's ack can reach the ingest after the writer wrote and dropped the batch."""
    tail = Tail(forget_after=2)
    table = pa.table({"key": ["x"], "value": [1.0], "step": [0], "timestamp": [0.0]})
    tail.drop([5])  # written (it was never in this tail: another replica took it in, or the ack was late)
    tail.add(5, "p", "r", table)
    assert tail.batches == {} and tail.rows == 0
    tail.drop([6, 7])  # only the last two dropped sequences are remembered
    tail.add(5, "p", "r", table)
    assert list(tail.batches) == [5]
