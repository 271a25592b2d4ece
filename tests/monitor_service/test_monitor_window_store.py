"""Windows on a real SQLite file from real encoded sample batches: counts per request (not per row,
shadows left out), error rate, latency quantiles within the sketch's accuracy, closing by sample
time and by the clock, late samples, the position stored with the counts (a batch read again
counts once), and downsampling."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cairn.monitor import profile
from cairn.services.monitor.consumer import parse
from cairn.services.monitor.window_store import WindowStore
from cairn.services.monitor.windows import LATENCY_ALPHA, LatencySketch, downsample
from cairn.serving.inference_records import encode_samples
from cairn.serving.sink import InferenceSample

SIZES = {"10s": 10, "1m": 60}
BASE = 1_700_000_040.0  # a multiple of 60: the 1m window starts here


def sample(i: int, when: float, *, status: int = 200, latency: float = 5.0, rows: int = 1,
           role: str = "primary") -> InferenceSample:
    features = pd.DataFrame({"amount": np.arange(rows, dtype=float) + i, "country": ["de"] * rows})
    return InferenceSample(request_id=f"r{i}", project="shop", model="m", version=1, features=features,
                           prediction=[0] * rows, latency_ms=latency, status=status, time=when,
                           deployment="fraud", replica="x", role=role)


def message(seq: int, samples: list[InferenceSample], deployment: str = "fraud") -> tuple[int, str, bytes]:
    (data, _), = encode_samples(samples)
    return seq, f"cairn.inference.shop.{deployment}", data


@pytest.fixture()
def store(tmp_path: Path) -> WindowStore:
    return WindowStore(tmp_path / "windows.sqlite3", SIZES, grace_s=2.0)


def test_requests_count_once_shadows_are_not_traffic_and_5xx_are_errors(store: WindowStore) -> None:
    batch = [sample(0, BASE + 1, rows=3), sample(1, BASE + 2, status=503), sample(2, BASE + 3, status=404),
             sample(3, BASE + 4, role="shadow", status=500)]
    assert store.ingest(parse([message(1, batch)])) == 1
    (ten, minute) = sorted(store.open_windows("shop", "fraud"), key=lambda w: w["size"])
    assert ten["size"] == "10s" and ten["start"] == BASE and ten["requests"] == 3 and ten["errors"] == 1
    assert minute["requests"] == 3


def test_a_batch_read_again_after_a_restart_counts_once(store: WindowStore, tmp_path: Path) -> None:
    first = message(5, [sample(0, BASE + 1)])
    store.ingest(parse([first]))
    store.close()
    again = WindowStore(tmp_path / "windows.sqlite3", SIZES, grace_s=2.0)
    assert again.position() == 5
    again.ingest(parse([first, message(6, [sample(1, BASE + 2)])]))
    assert {w["size"]: w["requests"] for w in again.open_windows("shop", "fraud")} == {"10s": 2, "1m": 2}
    assert again.position() == 6


def test_a_window_closes_when_samples_past_its_end_plus_grace_arrive(store: WindowStore) -> None:
    store.ingest(parse([message(1, [sample(0, BASE + 1, latency=10), sample(1, BASE + 9, status=500)])]))
    store.ingest(parse([message(2, [sample(2, BASE + 11)])]))  # past the end, within the grace
    assert store.closed("shop", "fraud", "10s", 0, 2e9) == []
    store.ingest(parse([message(3, [sample(3, BASE + 12)])]))  # end + grace reached
    (closed,) = store.closed("shop", "fraud", "10s", 0, 2e9)
    assert (closed["start"], closed["end"], closed["requests"], closed["errors"]) == (BASE, BASE + 10, 2, 1)
    assert closed["error_rate"] == 0.5
    assert [p["end"] for p in store.pending()] == [BASE + 10]
    store.decided(store.pending()[0])
    assert store.pending() == []


def test_the_clock_closes_a_quiet_deployments_windows_and_late_samples_are_counted_apart(store: WindowStore) -> None:
    store.ingest(parse([message(1, [sample(0, BASE + 1)])]))
    assert store.close_due(BASE + 11.9) == 0
    assert store.close_due(BASE + 12) == 1  # the 10s window; the minute is still open
    store.ingest(parse([message(2, [sample(1, BASE + 5)])]))  # its 10s window is closed: late
    assert store.counter("late_requests") == 1
    assert store.query("SELECT count(*) FROM window_batches")[0][0] == 0  # nothing kept for a closed window
    assert store.closed("shop", "fraud", "10s", 0, 2e9)[0]["requests"] == 1
    # a late sample still counts in the windows of its time that are open (the minute)
    assert {w["size"]: w["requests"] for w in store.open_windows("shop", "fraud")} == {"1m": 2}


def test_latency_quantiles_are_within_the_sketch_accuracy() -> None:
    rng = random.Random(7)
    values = [rng.lognormvariate(3, 1) for _ in range(20_000)]
    sketch = LatencySketch()
    for value in values:
        sketch.add(value)
    for q in (0.5, 0.95, 0.99):
        exact = float(np.quantile(values, q, method="lower"))
        assert sketch.quantile(q) == pytest.approx(exact, rel=2 * LATENCY_ALPHA)
    assert LatencySketch.from_json(sketch.to_json()) == sketch


def test_samples_of_plain_serve_and_labels_move_the_position_only(store: WindowStore) -> None:
    label = (3, "cairn.feedback.shop.fraud", b'{"request_id": "r0", "label": 1}')
    store.ingest(parse([message(2, [sample(0, BASE)], deployment="_serve"), label]))
    assert store.position() == 3 and store.open_windows("shop", "_serve") == []


def test_downsampling_merges_groups_and_keeps_the_worst_quantile() -> None:
    rows = [{"start": float(i), "end": float(i + 1), "requests": 10, "errors": i % 2, "error_rate": None,
             "latency_p50_ms": 1.0, "latency_p95_ms": 2.0, "latency_p99_ms": float(i)} for i in range(10)]
    merged = downsample(rows, 3)
    assert len(merged) == 3 and merged[0]["requests"] == 40 and merged[0]["end"] == 4.0
    assert merged[0]["latency_p99_ms"] == 3.0 and merged[0]["error_rate"] == 2 / 40
    assert downsample(rows, 10) == rows


def shifted_samples(rng: np.random.Generator, start: int, when: float, shift: float, n: int) -> list[InferenceSample]:
    return [InferenceSample(request_id=f"d{start + i}", project="shop", model="m", version=1,
                            features=pd.DataFrame({"amount": [float(rng.normal(shift, 1.0))],
                                                   "country": ["de" if shift == 0 else "fr"]}),
                            prediction=[0], latency_ms=1.0, status=200, time=when, deployment="fraud")
            for i in range(n)]


def test_a_closed_window_carries_its_drift_against_the_reference(tmp_path: Path) -> None:
    """The smallest window is profiled on the reference's edges and compared; the larger window
    merges the smallest windows' profiles (needs the statistics library, cairn.monitor)."""
    from cairn.services.monitor.windows import Reference

    rng = np.random.default_rng(3)
    reference_table = pd.DataFrame({"amount": rng.normal(0.0, 1.0, 500), "country": ["de"] * 500})
    reference = profile.profile_table(reference_table)
    ref = Reference(reference.digest(), reference)
    store = WindowStore(tmp_path / "w.sqlite3", SIZES, grace_s=2.0, references=lambda project, deployment: ref)
    store.ingest(parse([message(1, shifted_samples(rng, 0, BASE + 1, 0.0, 200)),
                        message(2, shifted_samples(rng, 200, BASE + 11, 3.0, 200))]))
    store.close_due(BASE + 60 + 2)
    calm, shifted = store.closed("shop", "fraud", "10s", 0, 2e9)
    assert calm["drift"]["reference"] == ref.digest
    assert calm["drift"]["columns"]["amount"]["drifted"] is False
    assert shifted["drift"]["columns"]["amount"]["drifted"] is True
    assert shifted["drift"]["columns"]["country"]["drifted"] is True and shifted["drift"]["share"] == 1.0
    (minute,) = store.closed("shop", "fraud", "1m", 0, 2e9)
    assert minute["requests"] == 400 and minute["drift"]["columns"]["amount"]["drifted"] is True
    assert store.query("SELECT count(*) FROM window_batches")[0][0] == 0


def feedback(seq: int, request_id: str, label: object, when: float) -> tuple[int, str, bytes]:
    body = {"request_id": request_id, "label": label, "time": when, "actor": "user:x"}
    return seq, "cairn.feedback.shop.fraud", json.dumps(body).encode()


def test_labels_give_the_window_of_their_arrival_its_live_performance(store: WindowStore) -> None:
    """Predictions 0,1,0,1 for r0..r3; labels 0,1,1,1 arrive in the next window: accuracy 3/4.
    A second label for a request, and a label for a request never sampled, change nothing."""
    batch = [sample(i, BASE + 1) for i in range(4)]
    for i, item in enumerate(batch):
        object.__setattr__(item, "prediction", [i % 2])
    store.ingest(parse([message(1, batch)]))
    labels = [feedback(2 + i, f"r{i}", truth, BASE + 12) for i, truth in enumerate((0, 1, 1, 1))]
    store.ingest(parse([*labels, feedback(6, "r0", 1, BASE + 13), feedback(7, "nobody", 1, BASE + 13)]))
    store.close_due(BASE + 60 + 2)
    first, second = store.closed("shop", "fraud", "10s", 0, 2e9)
    assert first["performance"] is None and first["requests"] == 4
    assert second["requests"] == 0 and second["performance"]["labels"] == 4
    assert second["performance"]["accuracy"] == 0.75 and second["performance"]["precision"] == 1.0
    assert second["performance"]["recall"] == pytest.approx(2 / 3)
    assert store.counter("unmatched_labels") == 1
    (minute,) = store.closed("shop", "fraud", "1m", 0, 2e9)
    assert minute["performance"]["accuracy"] == 0.75


def test_regression_labels_give_mae_and_rmse() -> None:
    from cairn.services.monitor.windows import performance

    result = performance([("1.5", "1.0"), ("2.0", "3.0")])
    assert result is not None and result["mae"] == 0.75 and result["rmse"] == pytest.approx((0.625) ** 0.5)


def test_a_window_profiled_batch_by_batch_drifts_as_one_profiled_at_once(tmp_path: Path) -> None:
    """The smallest window keeps a running profile merged batch by batch (no raw message kept):
    the same messages in one batch or in three give the same drift, and nothing is left after
    the close."""
    from cairn.services.monitor.windows import Reference

    rng = np.random.default_rng(5)
    reference = profile.profile_table(pd.DataFrame({"amount": rng.normal(0.0, 1.0, 500), "country": ["de"] * 500}))
    ref = Reference(reference.digest(), reference)
    messages = [message(1 + i, shifted_samples(rng, 100 * i, BASE + 1 + i, 0.3 * i, 100)) for i in range(3)]
    results = []
    for name, batches in (("one", [messages]), ("three", [[m] for m in messages])):
        store = WindowStore(tmp_path / f"{name}.sqlite3", SIZES, grace_s=2.0, references=lambda p, d: ref)
        for batch in batches:
            store.ingest(parse(batch))
        assert store.query("SELECT count(*) FROM window_batches")[0][0] == 0  # no raw message kept
        assert store.query("SELECT count(*) FROM window_profiles")[0][0] == 1
        store.close_due(BASE + 60 + 2)
        assert store.query("SELECT count(*) FROM window_profiles")[0][0] == 0
        (closed,) = store.closed("shop", "fraud", "10s", 0, 2e9)
        assert closed["requests"] == 300
        results.append(closed["drift"])
    assert results[0]["columns"]["amount"]["drifted"] is True
    assert results[0]["columns"]["amount"]["score"] == pytest.approx(results[1]["columns"]["amount"]["score"])
    assert {k: v for k, v in results[0].items() if k != "columns"} == {k: v for k, v in results[1].items()
                                                                      if k != "columns"}


def test_a_window_whose_reference_changed_while_open_closes_without_drift(tmp_path: Path) -> None:
    from cairn.services.monitor.windows import Reference

    rng = np.random.default_rng(6)
    refs = [profile.profile_table(pd.DataFrame({"amount": rng.normal(shift, 1.0, 300)})) for shift in (0.0, 1.0)]
    current = [Reference(refs[0].digest(), refs[0])]
    store = WindowStore(tmp_path / "w.sqlite3", SIZES, grace_s=2.0, references=lambda p, d: current[0])
    store.ingest(parse([message(1, shifted_samples(rng, 0, BASE + 1, 0.0, 50))]))
    current[0] = Reference(refs[1].digest(), refs[1])
    store.ingest(parse([message(2, shifted_samples(rng, 50, BASE + 2, 0.0, 50)),
                        message(3, shifted_samples(rng, 100, BASE + 11, 0.0, 50))]))
    store.close_due(BASE + 60 + 2)
    straddling, after = store.closed("shop", "fraud", "10s", 0, 2e9)
    assert straddling["requests"] == 100 and straddling["drift"] is None
    assert after["drift"]["reference"] == refs[1].digest()


def test_predictions_past_the_label_horizon_are_forgotten_and_younger_ones_kept(tmp_path: Path) -> None:
    store = WindowStore(tmp_path / "w.sqlite3", SIZES, grace_s=2.0, label_horizon_s=100.0)
    store.ingest(parse([message(1, [sample(0, BASE + 1)])]))
    store.ingest(parse([message(2, [sample(1, BASE + 50)])]))
    store.close_due(BASE + 120)  # r0 is 119 s old (forgotten), r1 70 s (kept)
    assert [r[0] for r in store.query("SELECT request_id FROM predictions")] == ["r1"]
    store.ingest(parse([feedback(3, "r0", 0, BASE + 121), feedback(4, "r1", 0, BASE + 121)]))
    assert store.counter("unmatched_labels") == 1
    store.close_due(BASE + 1000)
    assert store.query("SELECT count(*) FROM predictions")[0][0] == 0
    assert store.query("SELECT count(*) FROM prediction_marks")[0][0] == 0


def test_latencies_added_in_bulk_fill_the_same_buckets_as_one_by_one() -> None:
    values = np.array([0.0, 1e-7, 0.5, 1.0, 5.0, 5.0, 1234.5, -1.0, np.nan, np.inf, 0.01])
    one, bulk = LatencySketch(), LatencySketch()
    for value in values:
        one.add(float(value))
    bulk.add_many(values)
    assert bulk == one and bulk.count == 8


def test_requests_are_read_as_columns_with_shadows_extra_rows_and_missing_values_left_out(store: WindowStore) -> None:
    batch = [sample(0, BASE + 1, rows=3, latency=2.0), sample(1, BASE + 2, role="shadow"),
             sample(2, BASE + 3, status=503, latency=7.0)]
    ((_, _, _, requests, table, _),) = parse([message(1, batch)])
    assert requests.request_id == ["r0", "r2"] and requests.prediction == ["0", "0"]
    assert requests.status.tolist() == [200, 503] and requests.latency_ms.tolist() == [2.0, 7.0]
    assert table.num_rows == 4  # r0's three rows and r2's: what the window's profile reads


def test_a_window_whose_profile_failed_closes_without_drift_not_with_part_of_it(tmp_path: Path) -> None:
    """A feature named like the prediction column cannot be profiled: that window keeps no
    drift even when later batches of it profile well (a drift of part of its rows would mislead)."""
    from cairn.services.monitor.windows import Reference

    rng = np.random.default_rng(8)
    reference = profile.profile_table(pd.DataFrame({"amount": rng.normal(0.0, 1.0, 300)}))
    ref = Reference(reference.digest(), reference)
    store = WindowStore(tmp_path / "w.sqlite3", SIZES, grace_s=2.0, references=lambda p, d: ref)
    bad = sample(0, BASE + 1)
    object.__setattr__(bad, "features", pd.DataFrame({"amount": [0.1], "prediction": [1.0]}))
    store.ingest(parse([message(1, [bad])]))
    store.ingest(parse([message(2, shifted_samples(rng, 0, BASE + 2, 0.0, 50)),
                        message(3, shifted_samples(rng, 50, BASE + 11, 0.0, 50))]))
    store.close_due(BASE + 60 + 2)
    failed, fine = store.closed("shop", "fraud", "10s", 0, 2e9)
    assert failed["requests"] == 51 and failed["drift"] is None
    assert fine["drift"]["columns"]["amount"]["drifted"] is False


def test_float_predictions_are_kept_as_json_dumps_writes_them() -> None:
    """The fast path for float predictions gives json.dumps' text at every magnitude: the
    boundaries where repr switches to an exponent, float32 values, signed zeros, subnormals."""
    import pyarrow as pa

    from cairn.services.monitor.samples import _json_texts

    rng = np.random.default_rng(11)
    edges = [s * f * 10.0 ** e for e in range(-8, 20) for f in (1.0, 0.9999999999999999, 1.0000000000000002)
             for s in (1, -1)]
    values = np.concatenate([edges, rng.standard_normal(20_000) * 10.0 ** rng.integers(-12, 22, 20_000),
                             [0.0, -0.0, 5e-324, 1.7976931348623157e308, 0.1, 100.0, 1e15, 123456.789]])
    assert _json_texts(pa.chunked_array([values])) == [json.dumps(v) for v in values.tolist()]
    small = rng.standard_normal(1000).astype(np.float32)
    assert _json_texts(pa.chunked_array([small])) == [json.dumps(v) for v in small.tolist()]
    assert _json_texts(pa.chunked_array([[1.5, None, float("nan")]])) == ["1.5", None, "NaN"]
    assert _json_texts(pa.chunked_array([[3, -4]])) == ["3", "-4"]
