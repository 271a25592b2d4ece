"""Evidently 0.7.23 as the peer of Cairn's drift: importing it under pandas 3, and its per-column
decisions. One module for bench_monitor.py and tests/monitor/test_evidently_oracle.py, so the
benchmark times and the oracle test checks the same reading of Evidently's results."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any


def import_evidently() -> Any:
    """Evidently 0.7.23 imports ``infer_dtype_from_object`` (removed in pandas 3) for a
    data-integrity check that neither the benchmark nor the tests run; give it a stand-in that
    refuses to be called, then import."""
    import pandas.core.dtypes.common as pandas_common

    if not hasattr(pandas_common, "infer_dtype_from_object"):
        def _removed_in_pandas_3(_: object) -> None:
            raise NotImplementedError("infer_dtype_from_object was removed in pandas 3")

        pandas_common.infer_dtype_from_object = _removed_in_pandas_3  # type: ignore[attr-defined]
    import evidently

    return evidently


def evidently_decisions(reference: Any, current: Any, *, numerical: Sequence[str],
                        categorical: Sequence[str] = (), api: str = "value-drift") -> dict[str, tuple[str, bool]]:
    """Evidently's per-column (method, drifted), from one report run: ``ValueDrift`` per column,
    or ``DataDriftPreset`` (``api="preset"``). A p-value method drifts below its threshold, a
    distance at or above it."""
    import_evidently()
    from evidently import DataDefinition, Dataset, Report
    from evidently.metrics import ValueDrift
    from evidently.presets import DataDriftPreset

    definition = DataDefinition(numerical_columns=list(numerical), categorical_columns=list(categorical))
    columns = [*numerical, *categorical]
    metrics = [DataDriftPreset()] if api == "preset" else [ValueDrift(column=c) for c in columns]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        snapshot = Report(metrics).run(
            current_data=Dataset.from_pandas(current, data_definition=definition),
            reference_data=Dataset.from_pandas(reference, data_definition=definition))
    decisions = {}
    for metric in snapshot.dict()["metrics"]:
        config, value = metric["config"], metric["value"]
        if "column" not in config or "method" not in config:
            continue  # DriftedColumnsCount: the share, derived from the per-column results
        drifted = value < config["threshold"] if "p_value" in config["method"] \
            else value >= config["threshold"]
        decisions[config["column"]] = (config["method"], bool(drifted))
    return decisions
