"""Request bodies to DataFrames, and DataFrames checked against a model's signature.

Two wire protocols: MLflow's scoring protocol (``POST /invocations``: ``dataframe_split``,
``dataframe_records``, ``instances``, ``inputs``; JSON or CSV) and the Open Inference Protocol
(KServe v2: ``inputs`` = named tensors with ``shape``, ``datatype`` and flat ``data``). A body
that cannot be read is a 400; one that reads but does not fit the signature is a 422 naming the
column, so a client knows exactly what to fix.
"""

from __future__ import annotations

import io
import json
from typing import Any

import numpy as np
import pandas as pd

from cairn.kernel.errors import BadRequest, InvalidInput

MLFLOW_KEYS = ("dataframe_split", "dataframe_records", "instances", "inputs")
V2_TYPES = {"BOOL": "boolean", "INT8": "long", "INT16": "long", "INT32": "long", "INT64": "long",
            "UINT8": "long", "UINT16": "long", "UINT32": "long", "UINT64": "long", "FP16": "double",
            "FP32": "double", "FP64": "double", "BYTES": "string"}


def _json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (UnicodeDecodeError, ValueError) as err:
        raise BadRequest(f"the body is not valid JSON: {err}") from None


def _frame(data: Any, columns: list[str] | None, names: list[str]) -> pd.DataFrame:
    """Rows (lists) or records (dicts) to a frame; unnamed columns take the signature's names."""
    if not isinstance(data, list) or not data:
        raise BadRequest("expected a non-empty list of rows")
    if all(isinstance(r, dict) for r in data):
        return pd.DataFrame.from_records(data)
    if all(isinstance(r, list) for r in data):
        width = len(data[0])
        if any(len(r) != width for r in data):
            raise BadRequest("every row needs the same number of values")
        if columns is None:
            if names and len(names) != width:
                raise InvalidInput(f"rows have {width} values; the model takes {len(names)} columns: "
                                   f"{', '.join(names)}")
            columns = names or [str(i) for i in range(width)]
        return pd.DataFrame(data, columns=columns)
    if all(not isinstance(r, (list, dict)) for r in data) and len(names) == 1:
        return pd.DataFrame({names[0]: data})
    raise BadRequest("rows must all be lists (or all objects with column names)")


def parse_invocation(body: bytes, content_type: str, names: list[str]) -> pd.DataFrame:
    """MLflow's scoring protocol (JSON or CSV) -> a frame."""
    kind = content_type.split(";")[0].strip().lower()
    if kind == "text/csv":
        try:
            return pd.read_csv(io.BytesIO(body))
        except (ValueError, UnicodeDecodeError) as err:
            raise BadRequest(f"the body is not valid CSV: {err}") from None
    if kind not in ("application/json", ""):
        raise BadRequest(f"content type {kind!r} is not accepted; send application/json or text/csv")
    doc = _json(body)
    if not isinstance(doc, dict) or sum(k in doc for k in MLFLOW_KEYS) != 1:
        raise BadRequest(f"the JSON body needs exactly one of {', '.join(MLFLOW_KEYS)}")
    if "dataframe_split" in doc:
        split = doc["dataframe_split"]
        if not isinstance(split, dict) or "data" not in split:
            raise BadRequest("dataframe_split needs 'data' (and usually 'columns')")
        columns = split.get("columns")
        if columns is not None and (not isinstance(columns, list) or not all(isinstance(c, str) for c in columns)):
            raise BadRequest("dataframe_split.columns must be a list of names")
        return _frame(split["data"], columns, names)
    if "dataframe_records" in doc:
        return _frame(doc["dataframe_records"], None, names)
    key = "instances" if "instances" in doc else "inputs"
    value = doc[key]
    if isinstance(value, dict):  # column -> values
        try:
            return pd.DataFrame({k: v if isinstance(v, list) else [v] for k, v in value.items()})
        except ValueError as err:
            raise BadRequest(f"{key}: {err}") from None
    return _frame(value, None, names)


def parse_v2(body: bytes, names: list[str]) -> tuple[pd.DataFrame, str | None]:
    """An Open Inference Protocol request -> (frame, request id). One 2-D tensor fills all columns;
    several 1-D (or [N, 1]) tensors are one column each, by name."""
    doc = _json(body)
    if not isinstance(doc, dict) or not isinstance(doc.get("inputs"), list) or not doc["inputs"]:
        raise BadRequest("an inference request needs 'inputs': a list of tensors")
    columns: dict[str, Any] = {}
    for tensor in doc["inputs"]:
        if not isinstance(tensor, dict) or not {"name", "shape", "datatype", "data"} <= tensor.keys():
            raise BadRequest("each input tensor needs name, shape, datatype and data")
        shape, datatype = tensor["shape"], tensor["datatype"]
        if not isinstance(shape, list) or not all(isinstance(d, int) and d >= 0 for d in shape) \
                or not 1 <= len(shape) <= 2:
            raise BadRequest(f"input {tensor['name']!r}: shape must be [rows] or [rows, columns]")
        if datatype not in V2_TYPES:
            raise BadRequest(f"input {tensor['name']!r}: unknown datatype {datatype!r}")
        flat = np.asarray(tensor["data"], dtype=object).reshape(-1)
        if flat.size != int(np.prod(shape)):
            raise BadRequest(f"input {tensor['name']!r}: {flat.size} values do not fill shape {shape}")
        values = flat.reshape(shape).tolist()
        if len(shape) == 2 and shape[1] != 1:
            if len(doc["inputs"]) != 1:
                raise BadRequest("send one [rows, columns] tensor, or one 1-D tensor per column")
            return _frame(values, None, names), doc.get("id")
        columns[str(tensor["name"])] = [v[0] for v in values] if len(shape) == 2 else values
    try:
        return pd.DataFrame(columns), doc.get("id")
    except ValueError:
        raise BadRequest("all input tensors need the same number of rows") from None


def _coerce(series: pd.Series, kind: str, column: str) -> pd.Series:
    values = series.tolist()
    if kind == "string":
        if not all(isinstance(v, str) for v in values):
            raise InvalidInput(f"column {column!r} takes strings", details={"column": column})
        return series.astype(object)
    if kind == "boolean":
        if not all(isinstance(v, (bool, np.bool_)) for v in values):
            raise InvalidInput(f"column {column!r} takes booleans", details={"column": column})
        return series.astype(bool)
    numeric = all(isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, (bool, np.bool_))
                  for v in values)
    if not numeric:
        raise InvalidInput(f"column {column!r} takes numbers ({kind}); got {values[0]!r}-like values",
                           details={"column": column})
    if kind in ("long", "integer"):
        if not all(float(v).is_integer() for v in values):
            raise InvalidInput(f"column {column!r} takes whole numbers ({kind})", details={"column": column})
        return series.astype(np.int64)
    return series.astype(np.float64)


def conform(frame: pd.DataFrame, signature: list[dict[str, str]]) -> pd.DataFrame:
    """The frame's columns in signature order with the signature's types; a missing, unknown or
    mistyped column is a 422 naming it. No signature: the frame as sent."""
    if frame.empty:
        raise BadRequest("the request has no rows")
    if not signature:
        return frame
    frame.columns = [str(c) for c in frame.columns]
    wanted = [c["name"] for c in signature]
    missing = [c for c in wanted if c not in frame.columns]
    if missing:
        raise InvalidInput(f"missing column {missing[0]!r}; the model takes {', '.join(wanted)}",
                           details={"column": missing[0]})
    extra = [c for c in frame.columns if c not in wanted]
    if extra:
        raise InvalidInput(f"unknown column {extra[0]!r}; the model takes {', '.join(wanted)}",
                           details={"column": extra[0]})
    return pd.DataFrame({c["name"]: _coerce(frame[c["name"]], c["type"], c["name"]) for c in signature})
